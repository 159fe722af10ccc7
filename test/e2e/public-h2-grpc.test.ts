import { publicH2Suite } from '../helpers/public-h2-suite.js';

publicH2Suite('grpc', { transport: 'grpc' });
