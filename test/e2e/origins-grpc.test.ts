import { originSuite } from '../helpers/origin-suite.js';

originSuite('grpc', { transport: 'grpc' });
