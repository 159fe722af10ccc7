#!/usr/bin/env node
// Runs the compiled uvu suites (dist/test/**/*.test.js) in one process and ends with the line
// `N passed, N failed` that CI reads. A run that hangs past RUN_TIMEOUT_MS is killed and fails.
import { spawn } from 'node:child_process';

const RUN_TIMEOUT_MS = 10 * 60 * 1000;
const uvu = new URL('../node_modules/uvu/bin.js', import.meta.url).pathname;
const pattern = `(?:${process.argv[2] ?? ''}).*\\.test\\.js$`;
const child = spawn(process.execPath, [uvu, 'dist/test', pattern, '--no-color'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});
let out = '';
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
const timer = setTimeout(() => {
  process.stdout.write(`\ntest run exceeded ${RUN_TIMEOUT_MS / 1000} s: killed\n`);
  child.kill('SIGKILL');
}, RUN_TIMEOUT_MS);
child.on('exit', (code) => {
  clearTimeout(timer);
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    process.stdout.write(`\n0 passed, 1 failed\n`);
    process.exit(1);
  }
  // A non-zero exit with every counted test passed is a crash outside a test: count it as one failure.
  const failed = total - passed || (code === 0 ? 0 : 1);
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
