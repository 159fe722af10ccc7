import { get } from 'node:http';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { createToken } from '../../src/edge/tokens.js';
import { freePort, freePorts } from '../helpers/free-port.js';
import { portOf, TcpOriginServer } from '../helpers/tcp-tools.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';
import { RedisServer } from '../helpers/redis-server.js';
import { suite } from '../helpers/suite.js';

/**
 * Edges sharing one registry in Redis (`--registry redis://…`), driven through real agents and a real
 * redis-server: the name rules hold across edges, held tunnels survive a frozen Redis, and /readyz
 * waits for Redis at start-up.
 */
const NAME = 'e2e/cluster-registry';
type Ctx = { origin: Origin; edges: Edge[]; agents: Agent[]; procs: Running[]; extraRedis?: RedisServer };
const test = suite<Ctx>(NAME, { edges: [], agents: [], procs: [] } as unknown as Ctx);
const available = RedisServer.available(NAME);
const run = available ? test : test.skip;
let redis: RedisServer | undefined;
const [alice, bob] = [createToken(), createToken()];
/** Reconnect grace of the edges here, ms: short, so that a name held for a leaving agent frees soon. */
const GRACE_MS = 1_000;
const tokens = [
  { hash: alice.hash, names: ['*'] },
  { hash: bob.hash, names: ['*'] },
];

test.before(async (ctx) => {
  ctx.origin = await startOrigin((req, res) => res.end(`origin ${req.url}`));
  if (available) redis = await RedisServer.start();
});
test.before.each(async (ctx) => {
  ctx.edges = [];
  ctx.agents = [];
  ctx.procs = [];
  await redis?.flush();
});
test.after.each(async (ctx) => {
  redis?.resume();
  await Promise.all(ctx.agents.map((a) => a.close()));
  await Promise.all(ctx.edges.map((e) => e.close()));
  await Promise.all(ctx.procs.map((p) => p.kill()));
  await ctx.extraRedis?.stop();
  ctx.extraRedis = undefined;
});
test.after(async (ctx) => {
  await ctx.origin.close();
  await redis?.stop();
});

async function edge(ctx: Ctx, edgeId: string, init: Parameters<typeof startEdge>[0] = {}): Promise<Edge> {
  const e = await startEdge({ registryUrl: redis!.url, edgeId, tokens, adminListen: '127.0.0.1:0', reconnectGraceMs: GRACE_MS, ...init });
  ctx.edges.push(e);
  await waitFor(() => e.cluster!.joined, 10_000, `${edgeId} to join`);
  return e;
}

async function agent(ctx: Ctx, e: Edge, name: string, token: string): Promise<Agent> {
  const a = await startAgent(e, ctx.origin.url, name, { token });
  ctx.agents.push(a);
  return a;
}

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    const a = (await p) as Agent;
    await a.close();
    return 'accepted';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

const admin = (port: number, path: string): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });

run('a name held through one edge is refused to another token on the other edge, and free again once its agent leaves', async (ctx) => {
  const [a, b] = [await edge(ctx, 'edge-a'), await edge(ctx, 'edge-b')];
  const first = await agent(ctx, a, 'demo', alice.token);
  assert.is((await send(a, 'demo', '/x')).body.toString(), 'origin /x');
  assert.is(await codeOf(startAgent(b, ctx.origin.url, 'demo', { token: bob.token })), 'ERR_NAME_TAKEN');
  // The same token on the other edge joins the pool.
  await agent(ctx, b, 'demo', alice.token);
  assert.is((await send(b, 'demo', '/y')).body.toString(), 'origin /y');
  const ready = JSON.parse((await admin(a.adminPort, '/readyz')).body) as { cluster: { edgeId: string; leases: number; registry: string } };
  assert.equal(ready.cluster, { ...ready.cluster, edgeId: 'edge-a', leases: 1, registry: 'ok' });
  const metrics = (await admin(a.adminPort, '/metrics')).body;
  assert.match(metrics, /jetty_lease_claims_total\{result="ok"\} 1/);
  assert.match(metrics, /jetty_redis_command_seconds_count\{command="claim"\} 1/);
  await first.close();
  ctx.agents.splice(ctx.agents.indexOf(first), 1);
  await Promise.all(ctx.agents.map((x) => x.close()));
  ctx.agents = [];
  // Both left: after the reconnect grace (held cluster-wide for alice), bob may take the name.
  await waitFor(async () => (await codeOf(startAgent(b, ctx.origin.url, 'demo', { token: bob.token }))) === 'accepted', 10_000, 'the name to be free');
});

run('an edge that closes releases its leases and deletes its record: another token may take the name at once', async (ctx) => {
  const [a, b] = [await edge(ctx, 'edge-a'), await edge(ctx, 'edge-b')];
  await agent(ctx, a, 'demo', alice.token);
  await a.close();
  assert.equal(await redis!.keys(), ['jetty:edge:edge-b', 'jetty:epoch']);
  await agent(ctx, b, 'demo', bob.token);
  assert.is((await send(b, 'demo', '/z')).body.toString(), 'origin /z');
});

run('Redis frozen (SIGSTOP): the tunnels an edge holds keep serving; a new agent is refused and admitted once Redis is back', async (ctx) => {
  const a = await edge(ctx, 'edge-a');
  await agent(ctx, a, 'demo', alice.token);
  redis!.pause();
  for (let i = 0; i < 5; i++) assert.is((await send(a, 'demo', `/${i}`)).res.statusCode, 200);
  assert.is(await codeOf(startAgent(a, ctx.origin.url, 'other', { token: bob.token })), 'ERR_AGENT_UNAVAILABLE');
  const metrics = (await admin(a.adminPort, '/metrics')).body;
  assert.match(metrics, /jetty_lease_claims_total\{result="unavailable"\} [1-9]/);
  assert.match(metrics, /jetty_redis_errors_total\{command="claim"\} [1-9]/);
  redis!.resume();
  await agent(ctx, a, 'other', bob.token);
  assert.is((await send(a, 'other', '/back')).body.toString(), 'origin /back');
});

run('TCP tunnels: an edge does not hand a new agent a port another edge holds (edges on 127.0.0.11 and .12, one range)', async (ctx) => {
  const ports = await freePorts(2);
  const range = ports.join(',');
  const on = (host: string) => ({ listen: `${host}:0`, grpcListen: `${host}:0`, tcpPorts: range });
  const [a, b] = [await edge(ctx, 'edge-a', on('127.0.0.11')), await edge(ctx, 'edge-b', on('127.0.0.12'))];
  const origin = await TcpOriginServer.start();
  try {
    const via = (e: Edge, host: string, token: string) => startAgent(e, new URL(`tcp://127.0.0.1:${origin.port}`), 'db', { token, edge: new URL(`http://${host}:${e.publicPort}`) });
    const first = await via(a, '127.0.0.11', alice.token);
    ctx.agents.push(first);
    const second = await via(b, '127.0.0.12', bob.token);
    ctx.agents.push(second);
    assert.is(portOf(first.url), ports[0]);
    assert.is(portOf(second.url), ports[1], 'the port edge-a holds is skipped');
  } finally {
    await Promise.all(ctx.agents.map((x) => x.close()));
    ctx.agents = [];
    await origin.close();
  }
});

run('jetty edge --registry: /readyz is 503 ("registry": "unreachable") until Redis is up, then 200 by itself', async (ctx) => {
  const [redisPort, adminPort] = [await freePort(), await freePort()];
  const url = `redis://127.0.0.1:${redisPort}/0`;
  const edgeProc = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', `127.0.0.1:${adminPort}`, '--registry', url, '--edge-id', 'edge-cli']);
  ctx.procs.push(edgeProc);
  await edgeProc.line(/^Shared registry redis:\/\/127\.0\.0\.1:\d+\/0 as edge edge-cli$/);
  const down = await admin(adminPort, '/readyz');
  assert.is(down.status, 503);
  assert.is((JSON.parse(down.body) as { registry: string }).registry, 'unreachable');
  ctx.extraRedis = await RedisServer.startOn(redisPort);
  await waitFor(async () => (await admin(adminPort, '/readyz')).status === 200, 10_000, '/readyz to turn 200');
  const up = JSON.parse((await admin(adminPort, '/readyz')).body) as { cluster: { edgeId: string; registry: string } };
  assert.is(up.cluster.edgeId, 'edge-cli');
  assert.is(up.cluster.registry, 'ok');
});

test.run();
