import { tcpSuite } from '../helpers/tcp-suite.js';

tcpSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
