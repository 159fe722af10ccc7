import { transportSuite } from '../helpers/transport-suite.js';

transportSuite('grpc', { transport: 'grpc' });
