import { upgradeSuite } from '../helpers/upgrade-suite.js';

upgradeSuite('websocket+protobuf', { transport: 'websocket', wsCodec: 'proto' });
