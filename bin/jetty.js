#!/usr/bin/env -S node --max-semi-space-size=1
// The CLI entry: the TypeScript build runs in `npm ci` (prepare), so dist/ is always there after install.
//
// --max-semi-space-size=1 (MiB; V8's default grows the young generation to 16 MiB per semi-space): Jetty's
// heap allocation is small and short-lived next to its byte buffers, so a larger young generation only
// adds resident memory; measured on fresh processes it is ≈ 4 MiB less RSS at idle and less growth under
// a slow reader, at no measurable throughput cost (bench/README.md, "Memory and start-up").
// Flags after `node` here apply when jetty runs as a command (npm's bin link, the Docker entrypoint);
// `node bin/jetty.js` skips them, and the bench reads them from this line (bench/procs.ts).
import { setFlagsFromString } from 'node:v8';

// No incremental marking: V8 then collects the old generation in one pause when it is full. With it,
// a bulk transfer (every socket read and WebSocket message a fresh ArrayBuffer, soon dropped) sent the
// edge or the agent, at random, into runs of 100-230 mark-compacts per GiB ("finalize incremental
// marking via task" every 20-40 ms), which doubled that process's CPU per GiB. Measured in
// bench/README.md ("WebSocket bulk path and V8's incremental marking"), with its cost: slow readers
// leave more garbage between collections. Set before anything is loaded, so main.js comes after it.
setFlagsFromString('--no-incremental-marking');
await import('../dist/src/main.js');
