import { upgradeSuite } from '../helpers/upgrade-suite.js';

upgradeSuite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
