import { grpcOriginSuite } from '../helpers/grpc-origin-suite.js';
import { originSuite } from '../helpers/origin-suite.js';

originSuite('grpc', { transport: 'grpc' });
await grpcOriginSuite('grpc', { transport: 'grpc' });
