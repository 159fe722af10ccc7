import { udpSuite } from '../helpers/udp-suite.js';

udpSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
