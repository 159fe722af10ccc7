import { transportSuite } from '../helpers/transport-suite.js';

transportSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
