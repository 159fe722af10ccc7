import { request } from 'node:http';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin, waitFor, type Origin } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';
import { deadline } from '../../src/wait.js';

const test = suite<{ origin: Origin; hanging: Set<import('node:http').ServerResponse>; procs: Running[] }>('e2e/exit');

test.before.each(async (ctx) => {
  ctx.hanging = new Set();
  ctx.procs = [];
  ctx.origin = await startOrigin((req, res) => {
    if (req.url === '/hang') ctx.hanging.add(res);
    else res.end('ok');
  });
});

test.after.each(async (ctx) => {
  for (const p of ctx.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(ctx.procs.map((p) => p.exited));
  for (const res of ctx.hanging) res.destroy();
  await ctx.origin.close();
});

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'quit.localhost' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the exit code, or fails the test if the process is still running after `ms`. */
async function exitsWithin(run: Running, ms: number): Promise<number | null> {
  const over = new AbortController();
  try {
    return await Promise.race([run.exited, deadline(ms, new Error(`still running ${ms} ms after the signal`), { signal: over.signal })]);
  } finally {
    over.abort(new Error('exited'));
  }
}

async function startPair(ctx: { origin: Origin; procs: Running[] }): Promise<{ edge: Running; agent: Running; port: number }> {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''], { JETTY_LOG_LEVEL: 'info' });
  ctx.procs.push(edge);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+)/))[1]);
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'quit'], { JETTY_LOG_LEVEL: 'info' });
  ctx.procs.push(agent);
  await agent.line(/^Forwarding /);
  return { edge, agent, port };
}

// Regression: pino's exit-time flushSync retried EAGAIN and EPIPE forever (Atomics.wait), so an edge
// whose log pipe was full or gone (`jetty edge | tee log`, then Ctrl-C) ignored every signal but SIGKILL.
test('with a log pipe that nobody reads, then closed, edge and agent still stop on SIGTERM', async (ctx) => {
  const { edge, agent, port } = await startPair(ctx);
  for (const p of [edge, agent]) p.child.stderr!.pause();
  // Each request logs a line on both sides: enough to fill a 64 KiB pipe.
  for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 20 }, (_, k) => get(port, `/r${i}-${k}`)));
  agent.child.kill('SIGTERM');
  edge.child.kill('SIGTERM');
  const codes = Promise.all([exitsWithin(agent, 5000), exitsWithin(edge, 5000)]);
  // The reader goes away too (tee killed by the same Ctrl-C).
  for (const p of [edge, agent]) {
    p.child.stdout!.destroy();
    p.child.stderr!.destroy();
  }
  assert.equal(await codes, [0, 0]);
});

test('a second signal during the drain exits at once', async (ctx) => {
  const { edge, port } = await startPair(ctx);
  const inFlight = get(port, '/hang').catch(() => 0);
  await waitFor(() => ctx.hanging.size === 1, 5000, 'the request to reach the origin');
  edge.child.kill('SIGTERM');
  await waitFor(() => edge.stderr.includes('draining'), 5000, 'the drain to start');
  edge.child.kill('SIGTERM');
  assert.is(await exitsWithin(edge, 2000), 0);
  await inFlight;
});

test.run();
