#!/usr/bin/env node
// The CLI entry: the TypeScript build runs in `npm ci` (prepare), so dist/ is always there after install.
import { setFlagsFromString } from 'node:v8';

// No incremental marking: V8 then collects the old generation in one pause when it is full. With it,
// a bulk transfer (every socket read and WebSocket message a fresh ArrayBuffer, soon dropped) sent the
// edge or the agent, at random, into runs of 100-230 mark-compacts per GiB ("finalize incremental
// marking via task" every 20-40 ms), which doubled that process's CPU per GiB. Measured in
// bench/README.md ("WebSocket bulk path and V8's incremental marking"), with its cost: slow readers
// leave more garbage between collections, which src/gc-budget.ts (started by `jetty edge` and
// `jetty http|tcp|udp`) collects. Set before anything is loaded, so main.js comes after it.
setFlagsFromString('--no-incremental-marking');
await import('../dist/src/main.js');
