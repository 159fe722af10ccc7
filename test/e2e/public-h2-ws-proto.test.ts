import { publicH2Suite } from '../helpers/public-h2-suite.js';

publicH2Suite('websocket+protobuf', { transport: 'websocket', wsCodec: 'proto' });
