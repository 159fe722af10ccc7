import { loadSuite } from '../helpers/load-suite.js';

loadSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
