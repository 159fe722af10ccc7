import { grpcOriginSuite } from '../helpers/grpc-origin-suite.js';
import { originSuite } from '../helpers/origin-suite.js';

originSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
await grpcOriginSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
