import { readdirSync } from 'node:fs';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin, waitFor, type Origin } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';
import { freePort } from '../helpers/free-port.js';
import { outcomeOf, SteadyLoad, steadyOrigin } from '../helpers/steady-load.js';

/**
 * Faults under load, over real processes: for each, the requests that fail are at most those in
 * flight when the fault hit, no response that looks complete is truncated, and the edge's gauges and
 * file descriptors return to their baseline.
 */

interface Ctx {
  origin: Origin;
  procs: Running[];
  /** Responses the origin holds open while a test wants it (origin reset). */
  held: Set<import('node:http').ServerResponse>;
}

/** Concurrent clients of the steady load; also the most requests that can be in flight at a fault. */
const CONCURRENCY = 8;
const PING_INTERVAL_MS = 200;

function edgeArgs(port: number, adminPort: number): string[] {
  return [
    'edge',
    '--listen', `127.0.0.1:${port}`,
    '--grpc-listen', '127.0.0.1:0',
    '--admin-listen', `127.0.0.1:${adminPort}`,
    '--ping-interval', String(PING_INTERVAL_MS),
    '--reconnect-grace', '10000',
    '--grace-period', '5000',
  ];
}

async function startEdge(ctx: Ctx, port: number, adminPort: number): Promise<Running> {
  const edge = jetty(edgeArgs(port, adminPort));
  ctx.procs.push(edge);
  await edge.line(/^Jetty edge on /);
  return edge;
}

async function startAgent(ctx: Ctx, port: number, transport: string): Promise<Running> {
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'steady', '--transport', transport]);
  ctx.procs.push(agent);
  await agent.line(/^Forwarding /);
  return agent;
}

const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

const readyz = async (adminPort: number): Promise<{ agents: number; exchanges: number }> =>
  (await (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).json()) as { agents: number; exchanges: number };

async function gauges(adminPort: number): Promise<{ ready: number; gauge: number }> {
  const ready = await readyz(adminPort);
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return { ready: ready.exchanges, gauge: Number(/^jetty_open_exchanges (\d+)$/m.exec(metrics)?.[1] ?? NaN) };
}

/** Stops the load and checks what every fault must leave behind. */
async function settle(load: SteadyLoad, edge: Running, adminPort: number, fdBaseline: number | undefined, maxFailed: number): Promise<void> {
  const stats = await load.stop();
  if (process.env.JETTY_FAULTS_VERBOSE) console.log(load.describe(), `(max ${maxFailed})`);
  assert.is(stats.truncatedClean, 0, `a cut response looked complete: ${load.describe()}`);
  assert.ok(stats.failed <= maxFailed, `${stats.failed} failed, at most ${maxFailed} were in flight: ${load.describe()}`);
  await waitFor(async () => {
    const g = await gauges(adminPort);
    return g.ready === 0 && g.gauge === 0;
  }, 5000, 'the edge gauges to return to zero');
  if (fdBaseline !== undefined) {
    const pid = edge.child.pid!;
    await waitFor(() => fdCount(pid) <= fdBaseline, 5000, `edge file descriptors back to ${fdBaseline} (now ${fdCount(pid)})`);
  }
}

for (const transport of ['grpc', 'websocket']) {
  const test = suite<Ctx>(`e2e/faults (${transport})`);

  test.before.each(async (ctx) => {
    ctx.procs = [];
    ctx.held = new Set();
    ctx.origin = await startOrigin((req, res) => {
      if (steadyOrigin(req, res)) return;
      // /reset: half a body, then the origin's connection is reset.
      res.write(Buffer.alloc(32 * 1024, 1));
      ctx.held.add(res);
    });
  });

  test.after.each(async (ctx) => {
    for (const p of ctx.procs) {
      if (p.child.signalCode === 'SIGSTOP' || p.child.exitCode === null) p.child.kill('SIGCONT');
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
    await Promise.all(ctx.procs.map((p) => p.exited));
    for (const res of ctx.held) res.destroy();
    await ctx.origin.close();
  });

  /** Edge and agent up, steady load running, warmed up; the edge's fd count as a baseline. */
  async function setUp(ctx: Ctx) {
    const [port, adminPort] = [await freePort(), await freePort()];
    const edge = await startEdge(ctx, port, adminPort);
    const agent = await startAgent(ctx, port, transport);
    const baseline = fdCount(edge.child.pid!);
    const load = new SteadyLoad(() => port, 'steady.localhost', CONCURRENCY);
    await load.okAfter(50);
    return { port, adminPort, edge, agent, load, baseline };
  }

  test('origin reset mid-response: only those responses are cut', async (ctx) => {
    const { port, adminPort, edge, load, baseline } = await setUp(ctx);
    const cut = Array.from({ length: 3 }, () => outcomeOf(port, 'steady.localhost', '/reset'));
    await waitFor(() => ctx.held.size === 3, 5000, 'the origin to start three responses');
    for (const res of ctx.held) res.socket?.resetAndDestroy();
    ctx.held.clear();
    const outcomes = await Promise.all(cut);
    assert.ok(outcomes.every((o) => o === 'cut' || o === 'status 502'), outcomes.join(', '));
    await load.okAfter(50);
    await settle(load, edge, adminPort, baseline, 0);
  });

  test('agent SIGKILL with exchanges in flight, then a new agent', async (ctx) => {
    const { port, adminPort, edge, agent, load, baseline } = await setUp(ctx);
    const inFlight = load.inFlight;
    agent.child.kill('SIGKILL');
    await agent.exited;
    await startAgent(ctx, port, transport);
    await load.okAfter(50);
    await settle(load, edge, adminPort, baseline, inFlight);
  });

  test('agent restart (SIGTERM, then a new agent) under load loses nothing', async (ctx) => {
    const { port, adminPort, edge, agent, load, baseline } = await setUp(ctx);
    agent.child.kill('SIGTERM');
    assert.is(await agent.exited, 0);
    await startAgent(ctx, port, transport);
    await load.okAfter(50);
    await settle(load, edge, adminPort, baseline, 0);
  });

  test('edge restart (SIGTERM, a new edge on the same port) under load: the agent comes back', async (ctx) => {
    const { port, adminPort, edge, load } = await setUp(ctx);
    const inFlight = load.inFlight;
    edge.child.kill('SIGTERM');
    assert.is(await edge.exited, 0);
    const next = await startEdge(ctx, port, adminPort);
    await load.okAfter(50);
    await settle(load, next, adminPort, undefined, inFlight);
  });

  test('agent stalled (SIGSTOP) beyond the ping timeout, then SIGCONT: it reconnects and serves', async (ctx) => {
    const { adminPort, edge, agent, load, baseline } = await setUp(ctx);
    agent.child.kill('SIGSTOP');
    // Every client is now waiting on the stalled agent: they are the ones in flight.
    await waitFor(() => load.inFlight === CONCURRENCY, 5000, 'all clients to wait');
    await waitFor(async () => (await readyz(adminPort)).agents === 0, 5000, 'the edge to give the agent up');
    agent.child.kill('SIGCONT');
    await load.okAfter(50);
    await settle(load, edge, adminPort, baseline, CONCURRENCY);
  });

  test.run();
}
