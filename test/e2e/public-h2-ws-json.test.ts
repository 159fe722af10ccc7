import { publicH2Suite } from '../helpers/public-h2-suite.js';

publicH2Suite('websocket+json', { transport: 'websocket', wsCodec: 'json' });
