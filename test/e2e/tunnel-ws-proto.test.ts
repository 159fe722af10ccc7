import { transportSuite } from '../helpers/transport-suite.js';

transportSuite('websocket+protobuf', { transport: 'websocket', wsCodec: 'proto' });
