import { loadSuite } from '../helpers/load-suite.js';

loadSuite('grpc', { transport: 'grpc' });
