import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { waitFor } from '../helpers/harness.js';
import { hasTool, JETTY_BIN, started, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

/**
 * Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group. jetty run directly
 * drains and exits 0; under `npm exec` (npx) the status is npm's, SIGINT (130 in a shell), although
 * jetty drained: npm runs the command through `sh -c`, forwards the SIGINT to that shell too, the shell
 * ends by it and npm re-raises it. The README says so; this test notices if npm ever changes.
 */
const test = suite<ProcessContext & { dir?: string }>('e2e/ctrl-c');
stopsAfterEach(test);

const NPM = hasTool('npm', ['--version'], 'e2e/ctrl-c (under npm exec)');

test.after.each((ctx) => {
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  ctx.dir = undefined;
});

const EDGE_ARGS = ['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--log-level', 'info', '--log-format', 'json'];

/** Sends SIGINT to the process group `run` leads (it was started detached), as Ctrl-C does. */
async function ctrlC(run: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  process.kill(-run.child.pid!, 'SIGINT');
  const code = await run.exited;
  return { code, signal: run.child.signalCode };
}

test('jetty run directly: Ctrl-C drains and exits 0', async (ctx) => {
  const edge = started(process.execPath, [JETTY_BIN, ...EDGE_ARGS], { detached: true });
  ctx.started.push(edge);
  await edge.line(/^Jetty edge on /);
  assert.equal(await ctrlC(edge), { code: 0, signal: null });
  // 'exit' can come before the last bytes on the pipes.
  await waitFor(() => edge.stderr.includes('"msg":"draining"'), 5000, `the drain log line; stderr: ${edge.stderr}`);
});

(NPM ? test : test.skip)('under npm exec: jetty drains, and npm reports SIGINT (130 in a shell), as the README says', async (ctx) => {
  // A project with jetty installed in it, as `npm install jetty-tunnel` leaves one.
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-npx-'));
  writeFileSync(join(ctx.dir, 'package.json'), '{"name":"npx-check","version":"0.0.0","private":true}\n');
  mkdirSync(join(ctx.dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(JETTY_BIN, join(ctx.dir, 'node_modules', '.bin', 'jetty'));
  const npx = started('npm', ['exec', '--offline', '--', 'jetty', ...EDGE_ARGS], { cwd: ctx.dir, detached: true });
  ctx.started.push(npx);
  await npx.line(/^Jetty edge on /, 30_000);
  assert.equal(await ctrlC(npx), { code: null, signal: 'SIGINT' });
  // jetty outlives npm by its drain; its log still arrives on the pipe it shares.
  await waitFor(() => npx.stderr.includes('"msg":"draining"'), 5000, `jetty to take the graceful path; stderr: ${npx.stderr}`);
});

test.run();
