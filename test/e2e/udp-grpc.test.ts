import { udpSuite } from '../helpers/udp-suite.js';

udpSuite('grpc', { transport: 'grpc' });
