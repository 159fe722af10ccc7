import { originSuite } from '../helpers/origin-suite.js';

originSuite('websocket+proto', { transport: 'websocket', wsCodec: 'proto' });
