#!/usr/bin/env node
// The CLI entry: the TypeScript build runs in `npm ci` (prepare), so dist/ is always there after install.
import '../dist/src/main.js';
