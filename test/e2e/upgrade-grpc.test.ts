import { upgradeSuite } from '../helpers/upgrade-suite.js';

upgradeSuite('grpc', { transport: 'grpc' });
