import { loadSuite } from '../helpers/load-suite.js';

loadSuite('websocket+proto', { transport: 'websocket', wsCodec: 'proto' });
