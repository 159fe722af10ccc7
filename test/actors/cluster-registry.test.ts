import * as assert from 'uvu/assert';
import { AgentSession } from '../../src/actors/agent-session.js';
import type { Lease, PeerForwarder } from '../../src/actors/cluster.js';
import { ClusterRegistry, MAX_PEERS_SEEN, type ClusterRegistryInit } from '../../src/actors/cluster-registry.js';
import { RedisLeases } from '../../src/actors/redis-leases.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { FakeControlChannel, REGISTERED } from '../helpers/fake-control-channel.js';
import { waitFor, within } from '../helpers/harness.js';
import { RedisServer } from '../helpers/redis-server.js';
import { suite } from '../helpers/suite.js';
import { waitForEvent } from '../../src/wait.js';

const NAME = 'actors/cluster-registry';
const test = suite<{ regs: ClusterRegistry[]; sessions: AgentSession[] }>(NAME, { regs: [], sessions: [] });
const available = RedisServer.available(NAME);
let redis: RedisServer | undefined;

/** Short leases, so that outages longer than a lease fit in a test. */
const FAST = { ttlMs: 1_500, renewIntervalMs: 300, safetyMarginMs: 300, timeoutMs: 300 };

type Ctx = { regs: ClusterRegistry[]; sessions: AgentSession[] };

function edge(ctx: Ctx, edgeId: string, init: Partial<ClusterRegistryInit> & { fast?: boolean } = {}): ClusterRegistry {
  const fast = init.fast ? { ttlMs: FAST.ttlMs, commandTimeoutMs: FAST.timeoutMs, renewTimeoutMs: FAST.timeoutMs } : {};
  const leases = new RedisLeases({ url: redis!.url, edgeId, logger: silentLogger(), ...fast });
  const reg = new ClusterRegistry({
    leases,
    logger: silentLogger(),
    reconnectGraceMs: 5_000,
    ...(init.fast ? { renewIntervalMs: FAST.renewIntervalMs, safetyMarginMs: FAST.safetyMarginMs } : {}),
    ...init,
  });
  ctx.regs.push(reg);
  leasesOf.set(reg, leases);
  return reg;
}

/** Each test edge's Redis side, to wait for the hints it receives. */
const leasesOf = new WeakMap<ClusterRegistry, RedisLeases>();

function session(ctx: Ctx, id: string, key = 'demo'): AgentSession {
  const s = new AgentSession({ id, name: key, channel: new FakeControlChannel(), logger: silentLogger() });
  ctx.sessions.push(s);
  return s;
}

/** A forwarder whose sessions are one stand-in session; `asked` lists the leases it was asked for. */
function standInForwarder(ctx: Ctx): { asked: Lease[]; remote: AgentSession; forwarder: PeerForwarder } {
  const asked: Lease[] = [];
  const remote = session(ctx, 'remote-stand-in');
  return { asked, remote, forwarder: { sessionFor: (lease) => (asked.push(lease), remote) } };
}

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

const reachable = (...regs: ClusterRegistry[]): Promise<void> => waitFor(() => regs.every((r) => r.reachable), 10_000, 'the edges to reach Redis');

test.before(async () => {
  if (available) redis = await RedisServer.start();
});
test.before.each(async (ctx) => {
  ctx.regs = [];
  ctx.sessions = [];
  await redis?.flush();
});
test.after.each(async (ctx) => {
  redis?.resume();
  for (const s of ctx.sessions) s.abort(new AbortError('test over'));
  await Promise.all(ctx.sessions.map((s) => s.closed));
  await Promise.all(ctx.regs.map((r) => r.close()));
});
test.after(async () => {
  await redis?.stop();
});

const run = available ? test : test.skip;

run('a stale epoch can neither renew nor release: the lease of the edge that took over stays', async (ctx) => {
  const [a, b] = [edge(ctx, 'edge-a'), edge(ctx, 'edge-b')];
  await reachable(a, b);
  const leasesA = new RedisLeases({ url: redis!.url, edgeId: 'edge-a', logger: silentLogger() });
  try {
    await waitFor(() => leasesA.ready, 10_000, 'a second client of edge-a to connect');
    await a.claim('demo', session(ctx, 'old'), { owner: '', secret: 's' });
    const stale = a.heldEpoch('demo')!;
    await b.claim('demo', session(ctx, 'new'), { owner: '', resume: 'old', resumeSecret: 's', secret: 't' });
    assert.equal(await leasesA.renew([{ key: 'demo', epoch: stale }], ''), ['fenced']);
    assert.is(await leasesA.release('demo', { sessionId: 'old', epoch: stale, last: true, graceMs: 0 }), false);
    assert.equal(await a.locate('demo'), [{ key: 'demo', edgeId: 'edge-b', epoch: b.heldEpoch('demo')! }] satisfies Lease[]);
  } finally {
    await leasesA.close();
  }
});

run('Redis frozen (SIGSTOP): held tunnels keep serving, new claims are refused as retryable, all recovers after SIGCONT', async (ctx) => {
  const a = edge(ctx, 'edge-a', { fast: true });
  await reachable(a);
  const held = session(ctx, 'held');
  await a.claim('demo', held, { owner: 'sha256:t' });
  const before = a.heldEpoch('demo')!;
  redis!.pause();
  // The lease may have expired in Redis by now: the local deadline passes first.
  await waitFor(() => a.heldEpoch('demo') === undefined, 5_000, 'the local deadline to pass');
  assert.is(a.lookup('demo'), held, 'the held tunnel is still served');
  assert.is(await codeOf(a.claim('other', session(ctx, 'new', 'other'), { owner: 'sha256:t' })), 'ERR_EDGE_UNAVAILABLE');
  assert.is(a.view().registry, 'unreachable');
  redis!.resume();
  await waitFor(() => a.heldEpoch('demo') !== undefined, 10_000, 'the lease to be renewed or claimed again');
  assert.ok(a.heldEpoch('demo')! >= before);
  assert.not.ok(held.stopped, 'the held session was never aborted');
  await a.claim('later', session(ctx, 'later', 'later'), { owner: 'sha256:t' });
  assert.is(a.view().registry, 'ok');
});

run('Redis killed and restarted empty: held tunnels keep serving, then are claimed again above the old epoch', async (ctx) => {
  const [a, b] = [edge(ctx, 'edge-a', { fast: true }), edge(ctx, 'edge-b', { fast: true })];
  await reachable(a, b);
  const held = session(ctx, 'held');
  await a.claim('demo', held, { owner: 'sha256:t' });
  const before = a.heldEpoch('demo')!;
  await redis!.crash();
  assert.is(await codeOf(b.claim('other', session(ctx, 'new', 'other'), { owner: 'sha256:u' })), 'ERR_EDGE_UNAVAILABLE');
  assert.is(a.lookup('demo'), held);
  await redis!.restart();
  await waitFor(
    async () => {
      b.forget('demo');
      return (await b.locate('demo')).some((l) => l.edgeId === 'edge-a');
    },
    10_000,
    'edge-a to claim its tunnel again',
  );
  assert.ok(a.heldEpoch('demo')! > before, 'epochs keep increasing after Redis lost its counter');
  assert.not.ok(held.stopped);
  assert.is(await codeOf(b.claim('demo', session(ctx, 'thief'), { owner: 'sha256:u' })), 'ERR_NAME_TAKEN');
});

run('the hot path does no Redis command: lookups of a held tunnel, and cached locates', async (ctx) => {
  const [a, b] = [edge(ctx, 'edge-a', { renewIntervalMs: 60_000 }), edge(ctx, 'edge-b', { renewIntervalMs: 60_000 })];
  await reachable(a, b);
  const held = session(ctx, 'held');
  // The claim's hint reaches edge-b on its own connection, in its own time: it drops the cache, so wait for it.
  const hinted = waitForEvent(leasesOf.get(b)!, 'hint', { timeoutMs: 5_000 });
  await a.claim('demo', held, { owner: '' });
  await hinted;
  assert.is((await b.locate('demo')).length, 1);
  const counted = async (): Promise<number> => {
    const all = await redis!.commandCounts();
    return Object.entries(all).reduce((n, [k, v]) => (/info|client|select|hello|command$/.test(k) ? n : n + v), 0);
  };
  const start = await counted();
  for (let i = 0; i < 10_000; i++) assert.is(a.lookup('demo'), held);
  for (let i = 0; i < 100; i++) await b.locate('demo');
  assert.is(await counted(), start, 'no command on the hot path');
});

run('waitFor: a tunnel held by another edge comes back through the forwarder; a hint wakes a request waiting out a grace', async (ctx) => {
  const { asked, remote, forwarder } = standInForwarder(ctx);
  const a = edge(ctx, 'edge-a', { peerUrl: 'http://127.0.0.1:7001' });
  const b = edge(ctx, 'edge-b', { forwarder });
  await reachable(a, b);
  assert.is(await b.waitFor('demo', 200), undefined, 'nobody holds it: no wait');
  const first = session(ctx, 'first');
  await a.claim('demo', first, { owner: 'sha256:t' });
  b.forget('demo');
  assert.is(await b.waitFor('demo', 1_000), remote);
  assert.equal(asked.at(-1), { key: 'demo', edgeId: 'edge-a', epoch: a.heldEpoch('demo')! });
  assert.is(await b.peerUrl('edge-a'), 'http://127.0.0.1:7001');
  assert.is(await b.peerUrl('edge-nowhere'), undefined);
  // A URL known only after the peer listener is bound: advertised at once, seen once the cache passes.
  a.advertise('http://127.0.0.1:7002');
  await waitFor(async () => (await b.peerUrl('edge-a')) === 'http://127.0.0.1:7002', 5_000, 'the new peer URL');
  // The agent drops (grace) and comes back on edge-a: the request waiting on edge-b is woken by the hint.
  await a.release('demo', first, { reconnecting: true });
  await waitFor(async () => (await b.locate('demo')).length === 0, 5_000, 'the release hint');
  const waiting = b.waitFor('demo', 5_000);
  await a.claim('demo', session(ctx, 'back'), { owner: 'sha256:t' });
  assert.is(await within(waiting, 5_000, 'the waiting request'), remote);
  assert.is(asked.length, 2);
});

run('relocate: never the lease that failed; waits for the agent to be claimed on another edge, or back on this one', async (ctx) => {
  const { asked, remote, forwarder } = standInForwarder(ctx);
  const [a, c] = [edge(ctx, 'edge-a'), edge(ctx, 'edge-c')];
  const b = edge(ctx, 'edge-b', { forwarder });
  await reachable(a, b, c);
  await a.claim('demo', session(ctx, 'first'), { owner: 'sha256:t' });
  const failed = { key: 'demo', edgeId: 'edge-a', epoch: a.heldEpoch('demo')! };
  // Still held under the lease that failed: nothing to go to; it waits until its deadline or the client leaves.
  const started = Date.now();
  assert.is(await b.relocate('demo', failed, 300), undefined);
  assert.ok(Date.now() - started >= 250, `gave up after ${Date.now() - started} ms`);
  const gone = new AbortController();
  const abandoned = b.relocate('demo', failed, 10_000, { signal: gone.signal });
  gone.abort(new AbortError('client left'));
  assert.is(await within(abandoned, 2_000, 'the abandoned relocation'), undefined);
  assert.is(asked.length, 0);
  // The agent moves to edge-c (takeover by its resume id): the waiting relocation goes there.
  const moving = b.relocate('demo', failed, 5_000);
  await c.claim('demo', session(ctx, 'moved'), { owner: 'sha256:t', resume: 'first' });
  assert.is(await within(moving, 5_000, 'the relocation to edge-c'), remote);
  const onC = asked.at(-1)!;
  assert.equal(onC, { key: 'demo', edgeId: 'edge-c', epoch: c.heldEpoch('demo')! });
  // Then it reconnects to edge-b itself: a relocation away from edge-c takes the local session.
  const again = b.relocate('demo', onC, 5_000);
  const local = session(ctx, 'local');
  await b.claim('demo', local, { owner: 'sha256:t', resume: 'moved' });
  assert.is(await within(again, 5_000, 'the relocation to this edge'), local);
  assert.is(asked.length, 1);
});

run('a lost lease aborts the sessions of the key, but lets a draining one finish by itself', async (ctx) => {
  const [a, b] = [edge(ctx, 'edge-a'), edge(ctx, 'edge-b')];
  await reachable(a, b);
  const [live, draining] = [session(ctx, 'live'), session(ctx, 'draining')];
  await a.claim('demo', live, { owner: 'sha256:t', secret: 's' });
  await a.claim('demo', draining, { owner: 'sha256:t', secret: 'd' });
  // Started, with one exchange waiting for the agent: a drain keeps it draining, not ended.
  draining.start(REGISTERED);
  const inFlight = draining.openExchange({ kind: ChunkKind.HEADERS, exchangeId: 'e1', method: 'GET', target: '/', headers: [] }).catch((err: unknown) => err);
  draining.drain();
  await waitFor(() => draining.draining, 5_000, 'the session to drain');
  await b.claim('demo', session(ctx, 'taker'), { owner: 'sha256:t', resume: 'live', secret: 'x' });
  await within(live.closed, 10_000, 'the fenced session to end');
  assert.is((live.error as { code?: string }).code, 'ERR_NAME_TAKEN');
  assert.not.ok(draining.stopped, 'the draining session was not aborted');
  draining.abort(new AbortError('test over'));
  await inFlight;
  assert.is(a.heldEpoch('demo'), undefined);
  assert.is(a.lookup('demo'), undefined);
});

run('requests that miss the cache together share one Redis read', async (ctx) => {
  // No renewal (also a script call) while counting.
  const [a, b] = [edge(ctx, 'edge-a', { renewIntervalMs: 60_000 }), edge(ctx, 'edge-b', { renewIntervalMs: 60_000 })];
  await reachable(a, b);
  const hinted = waitForEvent(leasesOf.get(b)!, 'hint', { timeoutMs: 5_000 });
  await a.claim('demo', session(ctx, 's'), { owner: '' });
  await hinted;
  // The first run of a script is an EVALSHA refused (NOSCRIPT), then an EVAL.
  const reads = async (): Promise<number> => {
    const n = await redis!.commandCounts();
    return (n.cmdstat_evalsha ?? 0) + (n.cmdstat_eval ?? 0);
  };
  b.forget('demo');
  const before = await reads();
  const views = await Promise.all(Array.from({ length: 50 }, () => b.locate('demo')));
  assert.ok(views.every((v) => v.length === 1 && v[0].edgeId === 'edge-a'));
  assert.is((await reads()) - before, 1);
});

run('the locate cache is bounded: names public clients make up do not grow it', async (ctx) => {
  const a = edge(ctx, 'edge-a', { cacheMaxEntries: 16 });
  await reachable(a);
  for (let i = 0; i < 200; i++) assert.equal(await a.locate(`made-up-${i}`), []);
  assert.is(a.cachedKeys, 16);
});

run('the peer URL cache is bounded: edge ids read from Redis (or planted there) do not grow it', async (ctx) => {
  const a = edge(ctx, 'edge-a');
  await reachable(a);
  for (let i = 0; i < MAX_PEERS_SEEN + 50; i++) assert.is(await a.peerUrl(`planted-${i}`), undefined);
  assert.is(a.cachedPeerUrls, MAX_PEERS_SEEN);
});

run('close() ends within its command timeouts while Redis is frozen', async (ctx) => {
  const a = edge(ctx, 'edge-a', { fast: true });
  await reachable(a);
  await a.claim('demo', session(ctx, 's'), { owner: '' });
  redis!.pause();
  await within(a.close(), 5_000, 'close with Redis frozen');
});

run('/readyz view: edge id, leases held, peers seen', async (ctx) => {
  const [a, b] = [edge(ctx, 'edge-a'), edge(ctx, 'edge-b')];
  await reachable(a, b);
  await a.claim('demo', session(ctx, 's'), { owner: '' });
  await waitFor(() => b.view().peers.includes('edge-a'), 5_000, 'edge-b to see edge-a');
  assert.equal(a.view(), { registry: 'ok', edgeId: 'edge-a', leases: 1, peers: [] });
});

test.run();
