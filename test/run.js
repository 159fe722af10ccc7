#!/usr/bin/env node
// Runs the compiled uvu suites (dist/test/**/*.test.js) in one process and ends with the line
// `N passed, N failed, N skipped` that CI reads. Every test has its own deadline (test/helpers/suite.ts);
// this runner adds: a run that hangs past RUN_TIMEOUT_MS is killed and fails; a process that does not
// exit within EXIT_GRACE_MS of uvu's summary (a test left a server or socket open) fails; a `.only`
// left in a suite fails the run (it would silently skip every other test).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// JETTY_RUN_TIMEOUT_MS: longer runs (`npm run fuzz -- --runs N` sets it from N).
const RUN_TIMEOUT_MS = Number(process.env.JETTY_RUN_TIMEOUT_MS) || 10 * 60 * 1000;
const EXIT_GRACE_MS = 10_000;
const DIST_TEST = 'dist/test';
const uvu = new URL('../node_modules/uvu/bin.js', import.meta.url).pathname;
const pattern = `(?:${process.argv[2] ?? ''}).*\\.test\\.js$`;

function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  );
}

const onlyIn = testFiles(DIST_TEST).filter((f) => /\btest\.only\(|\bsuite\([^)]*\)\.only\(|\.only\(['"`]/.test(readFileSync(f, 'utf8')));
if (onlyIn.length > 0) {
  process.stdout.write(`.only left in ${onlyIn.join(', ')}: it would skip every other test\n\n0 passed, 1 failed, 0 skipped\n`);
  process.exit(1);
}

const lingerReport = new URL('./linger-report.js', import.meta.url).href;
const child = spawn(process.execPath, ['--import', lingerReport, uvu, DIST_TEST, pattern, '--no-color'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});
let out = '';
let lingering = false;
let exitTimer;
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
  if (!exitTimer && /Duration:/.test(out)) {
    exitTimer = setTimeout(() => {
      lingering = true;
      process.stdout.write(`\nthe test process did not exit ${EXIT_GRACE_MS / 1000} s after its summary: a test left a handle open\n`);
      // test/linger-report.js prints what is still open, then the process is killed.
      child.kill('SIGUSR2');
      setTimeout(() => child.kill('SIGKILL'), 1000).unref();
    }, EXIT_GRACE_MS);
  }
});
const timer = setTimeout(() => {
  process.stdout.write(`\ntest run exceeded ${RUN_TIMEOUT_MS / 1000} s: killed\n`);
  child.kill('SIGKILL');
}, RUN_TIMEOUT_MS);
child.on('exit', (code) => {
  clearTimeout(timer);
  clearTimeout(exitTimer);
  const count = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? NaN);
  const [total, passed, skipped] = [count('Total'), count('Passed'), count('Skipped')];
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    process.stdout.write(`\n0 passed, 1 failed, 0 skipped\n`);
    process.exit(1);
  }
  // A non-zero exit with every counted test passed is a crash outside a test: count it as one failure.
  const failed = total - passed || (code === 0 && !lingering ? 0 : 1);
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped || 0} skipped\n`);
  process.exit(failed === 0 ? 0 : 1);
});
