import { grpcOriginSuite } from '../helpers/grpc-origin-suite.js';
import { originSuite } from '../helpers/origin-suite.js';

originSuite('websocket+proto', { transport: 'websocket', wsCodec: 'proto' });
await grpcOriginSuite('websocket+proto', { transport: 'websocket', wsCodec: 'proto' });
