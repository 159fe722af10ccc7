import { readFileSync } from 'node:fs';

/**
 * Jetty's version as package.json states it (the one place it is written), read once at start-up. The
 * path is the compiled module's (dist/src/version.js), as for proto/tunnel.proto in codec/tunnel-codec.ts.
 */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
