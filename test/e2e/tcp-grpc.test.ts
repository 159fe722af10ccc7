import { tcpSuite } from '../helpers/tcp-suite.js';

tcpSuite('grpc', { transport: 'grpc' });
