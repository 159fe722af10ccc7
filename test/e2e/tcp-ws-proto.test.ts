import { tcpSuite } from '../helpers/tcp-suite.js';

tcpSuite('websocket+proto', { transport: 'websocket' });
