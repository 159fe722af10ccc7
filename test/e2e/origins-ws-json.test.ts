import { originSuite } from '../helpers/origin-suite.js';

originSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
