import { udpSuite } from '../helpers/udp-suite.js';

udpSuite('websocket+proto', { transport: 'websocket' });
