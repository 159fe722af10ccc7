import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request, type IncomingMessage, type RequestListener } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import { ChunkKind, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { PEER_MAC_HEADER, PEER_PATH, peerAuthHeaders } from '../../src/edge/peer-auth.js';
import { withForwardFields } from '../../src/edge/peer-fields.js';
import { PeerLink } from '../../src/edge/peer-link.js';
import { EdgeMetrics } from '../../src/edge/metrics.js';
import { silentLogger } from '../../src/logger.js';
import { DEFAULT_WS_WINDOW_BYTES, WS_SOCKET_HIGH_WATER_BYTES } from '../../src/streams/ws-mux.js';
import { MemoryLeaseStore, startClusterEdge, TEST_PEER_SECRET } from '../helpers/cluster-double.js';
import { patternBytes, pumpBlocks, send, sha256, startAgent, startOrigin, waitFor, waitForStable, type Origin } from '../helpers/harness.js';
import { Forwarder } from '../helpers/tcp-tools.js';
import { UpgradeOrigin } from '../helpers/upgrade-suite.js';
import { suite } from '../helpers/suite.js';
import { makeTestPki } from '../helpers/tls-certs.js';

const MiB = 1024 * 1024;
const NAME = 'demo';

interface Ctx {
  store: MemoryLeaseStore;
  /** Holds the tunnel (its agent is connected here). */
  a: Edge;
  /** Does not: requests to it are forwarded to A. */
  b: Edge;
  origin: Origin;
  agent: Agent;
  handler: RequestListener;
  extra: Array<{ close(): unknown }>;
}

const test = suite<Ctx>('edge/peering');

test.before.each(async (ctx) => {
  ctx.store = new MemoryLeaseStore();
  ctx.extra = [];
  ctx.handler = (_req, res) => res.end('hello from A');
  ctx.origin = await startOrigin((req, res) => ctx.handler(req, res));
  ctx.a = await startClusterEdge(ctx.store, 'edge-a');
  ctx.b = await startClusterEdge(ctx.store, 'edge-b');
  ctx.agent = await startAgent(ctx.a, ctx.origin.url, NAME);
  await waitFor(() => ctx.store.leases.has(NAME), 5000, 'the lease of the tunnel');
});

test.after.each(async (ctx) => {
  for (const e of ctx.extra) await e.close();
  await ctx.agent.close();
  await Promise.all([ctx.a.close(), ctx.b.close()]);
  await ctx.origin.close();
});

async function metric(edge: Edge, name: string, labels = ''): Promise<number> {
  const text = await edge.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test('a request to the edge without the tunnel is forwarded to the edge holding it, once, and counted', async (ctx) => {
  const got = await send(ctx.b, NAME, '/');
  assert.is(got.res.statusCode, 200);
  assert.is(got.body.toString(), 'hello from A');
  assert.is(await metric(ctx.b, 'jetty_peer_forwarded_exchanges_total', '{kind="http"}'), 1);
  assert.is(await metric(ctx.a, 'jetty_peer_connections', '{direction="in"}'), 1);
  // The agent never sees the forwarding fields.
  let seen: string[] = [];
  ctx.handler = (req, res) => {
    seen = Object.keys(req.headers);
    res.end('ok');
  };
  await send(ctx.b, NAME, '/again', { headers: { 'jetty-forwarded-epoch': '999', 'jetty-forwarded-key': 'other' } });
  assert.not.ok(seen.some((h) => h.startsWith('jetty-forwarded')), seen.join(','));
  // One pooled connection carried both.
  assert.is(await metric(ctx.a, 'jetty_peer_connections', '{direction="in"}'), 1);
});

test('64 MiB each way through the forwarding edge arrive intact (SHA-256)', async (ctx) => {
  const down = patternBytes(64 * MiB, 7);
  ctx.handler = (req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
      return;
    }
    res.end(down);
  };
  const up = patternBytes(64 * MiB, 9);
  const posted = await send(ctx.b, NAME, '/up', { method: 'POST', body: up });
  assert.is(posted.body.toString(), `${up.length} ${sha256(up)}`);
  const got = await send(ctx.b, NAME, '/down');
  assert.is(got.body.length, down.length);
  assert.is(sha256(got.body), sha256(down));
});

test('an SSE stream through the forwarding edge delivers each event as it is written', async (ctx) => {
  let second: (() => void) | undefined;
  ctx.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n');
    second = () => res.end('data: two\n\n');
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ctx.b.publicPort, path: '/events', headers: { host: `${NAME}.localhost` }, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
  const [first] = (await once(res, 'data')) as [Buffer];
  assert.is(first.toString(), 'data: one\n\n');
  second!();
  const [next] = (await once(res, 'data')) as [Buffer];
  assert.is(next.toString(), 'data: two\n\n');
});

test('a WebSocket upgrade through the forwarding edge reaches the origin and echoes', async (ctx) => {
  const wsOrigin = await UpgradeOrigin.start();
  ctx.extra.push({ close: () => new Promise<void>((resolve) => (wsOrigin.server.closeAllConnections(), wsOrigin.server.close(() => resolve()))) });
  const agent = await startAgent(ctx.a, wsOrigin.url, 'live');
  ctx.extra.unshift(agent);
  await waitFor(() => ctx.store.leases.has('live'), 5000, 'the lease of the WebSocket tunnel');
  const ws = new WebSocket(`ws://127.0.0.1:${ctx.b.publicPort}/echo`, { headers: { host: `live.localhost:${ctx.b.publicPort}` } });
  await once(ws, 'open');
  const payload = patternBytes(256 * 1024, 3);
  ws.send(payload);
  const [echoed] = (await once(ws, 'message')) as [Buffer];
  assert.is(sha256(echoed), sha256(payload));
  ws.close();
  await once(ws, 'close');
  assert.is(await metric(ctx.b, 'jetty_peer_forwarded_exchanges_total', '{kind="http"}'), 1);
});

test('a slow reader through the forwarding edge pauses the origin within the named windows', async (ctx) => {
  let written = 0;
  let finished = false;
  const block = Buffer.alloc(64 * 1024, 1);
  ctx.handler = (_req, res) => {
    const pump = (): void => {
      while (written < 512 * MiB) {
        written += block.length;
        if (!res.write(block)) return void res.once('drain', pump);
      }
      finished = true;
      res.end();
    };
    pump();
  };
  const req = request({ host: '127.0.0.1', port: ctx.b.publicPort, path: '/big', headers: { host: `${NAME}.localhost` }, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.pause();
  await waitForStable(() => written, 10_000, 'origin writes to stop');
  assert.not.ok(finished, 'the origin finished although nobody read');
  // The path holds at most: the agent hop's window (as without forwarding, < 48 MiB with sockets) plus
  // one peer credit window (DEFAULT_WS_WINDOW_BYTES) and the peer socket's buffers.
  assert.ok(written < 48 * MiB + DEFAULT_WS_WINDOW_BYTES, `origin wrote ${written} bytes before pausing`);
  assert.ok(ctx.b.stats().peerConnectionsOut === 1);
  // The owner's send buffer towards B stays under the mux's high-water mark plus one credit window.
  assert.ok(ctx.a.stats().peerBufferedBytes <= WS_SOCKET_HIGH_WATER_BYTES + DEFAULT_WS_WINDOW_BYTES, `A holds ${ctx.a.stats().peerBufferedBytes} bytes for B`);
  req.destroy();
  res.destroy();
});

test('a slow origin through the forwarding edge pauses the uploading client within the named windows', async (ctx) => {
  let originReq: IncomingMessage | undefined;
  ctx.handler = (req) => {
    originReq = req;
    req.pause();
  };
  const req = request({ host: '127.0.0.1', port: ctx.b.publicPort, method: 'POST', path: '/slow-upload', headers: { host: `${NAME}.localhost` }, agent: false });
  req.on('error', () => undefined);
  const pumped = pumpBlocks(req, Buffer.alloc(64 * 1024, 2), 512 * MiB);
  await waitFor(() => originReq !== undefined, 5000, 'the request to reach the origin');
  await waitForStable(() => pumped.bytes, 10_000, 'the client writes to stop');
  assert.ok(pumped.blocked && !pumped.finished, `the client was never held back: ${JSON.stringify(pumped)}`);
  // Same bound as the download: the agent hop, one peer credit window, socket buffers.
  assert.ok(pumped.bytes < 48 * MiB + DEFAULT_WS_WINDOW_BYTES, `the client wrote ${pumped.bytes} bytes before pausing`);
  req.destroy();
});

test('an unreachable owner: the forwarder forgets the lease, looks again once, then answers 502', async (ctx) => {
  ctx.store.urls.set('edge-a', 'http://127.0.0.1:1');
  const got = await send(ctx.b, NAME, '/');
  assert.is(got.res.statusCode, 502);
  assert.is(got.res.headers['x-jetty-error'], 'ERR_AGENT_UNAVAILABLE');
  assert.equal(ctx.store.registries.get('edge-b')!.forgotten, [NAME]);
  // Back on its address, it is used again at once.
  ctx.store.urls.set('edge-a', ctx.a.peerUrl!);
  assert.is((await send(ctx.b, NAME, '/')).res.statusCode, 200);
});

test('a draining owner finishes the forwarded exchange in flight and refuses new ones with 503 at the forwarder', async (ctx) => {
  let finish: (() => void) | undefined;
  ctx.handler = (req, res) => {
    if (req.url === '/long') {
      res.write('started ');
      finish = () => res.end('and finished');
      return;
    }
    res.end('quick');
  };
  const inFlight = send(ctx.b, NAME, '/long');
  await waitFor(() => finish !== undefined, 5000, 'the long request to start');
  const drained = ctx.a.drain();
  await waitFor(() => ctx.a.stats().draining, 5000, 'A to drain');
  const refused = await send(ctx.b, NAME, '/new');
  assert.is(refused.res.statusCode, 503);
  assert.ok(refused.res.headers['retry-after']);
  finish!();
  const done = await inFlight;
  assert.is(done.body.toString(), 'started and finished');
  await drained;
});

test('a peer with the wrong secret is refused with 401 before the upgrade, logged and counted', async (ctx) => {
  const url = `ws://127.0.0.1:${ctx.a.peerPort}${PEER_PATH}`;
  const bad = new WebSocket(url, ['jetty.v1.proto'], { headers: peerAuthHeaders('not-the-cluster-secret', 'intruder') });
  bad.on('error', () => undefined);
  const [, res] = (await once(bad, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.is(res.statusCode, 401);
  bad.terminate();
  const stale = new WebSocket(url, ['jetty.v1.proto'], { headers: peerAuthHeaders(TEST_PEER_SECRET, 'edge-b', Date.now() - 10 * 60_000) });
  stale.on('error', () => undefined);
  const [, res2] = (await once(stale, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.is(res2.statusCode, 401);
  stale.terminate();
  // A handshake that worked once does not work twice (a replay).
  const headers = peerAuthHeaders(TEST_PEER_SECRET, 'edge-b');
  const first = new WebSocket(url, ['jetty.v1.proto'], { headers });
  await once(first, 'open');
  first.close();
  const replay = new WebSocket(url, ['jetty.v1.proto'], { headers });
  replay.on('error', () => undefined);
  const [, res3] = (await once(replay, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.is(res3.statusCode, 401);
  replay.terminate();
  // Nor with its MAC spelled otherwise (base64 padding decodes to the same bytes).
  const respelled = new WebSocket(url, ['jetty.v1.proto'], { headers: { ...headers, [PEER_MAC_HEADER]: `${headers[PEER_MAC_HEADER]}=` } });
  respelled.on('error', () => undefined);
  const [, res4] = (await once(respelled, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.is(res4.statusCode, 401);
  respelled.terminate();
  assert.is(await metric(ctx.a, 'jetty_peer_auth_failures_total'), 4);
  // An edge configured with another secret cannot forward: its client gets 502, the owner counts a failure.
  const c = await startClusterEdge(ctx.store, 'edge-c', { peerSecret: 'another-secret-0123456789' });
  ctx.extra.push(c);
  const got = await send(c, NAME, '/');
  assert.is(got.res.statusCode, 502);
  assert.is(await metric(ctx.a, 'jetty_peer_auth_failures_total'), 5);
});

test('a listener at the peer URL that cannot prove the secret (an impostor, a stale URL) never gets a request', async (ctx) => {
  const impostor = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'jetty.v1.proto' });
  await once(impostor, 'listening');
  ctx.extra.push({ close: () => new Promise<void>((resolve) => (impostor.clients.forEach((c) => c.terminate()), impostor.close(() => resolve()))) });
  let frames = 0;
  impostor.on('connection', (ws) => ws.on('message', () => frames++));
  ctx.store.urls.set('edge-a', `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`);
  const got = await send(ctx.b, NAME, '/secret-stuff');
  assert.is(got.res.statusCode, 502);
  assert.is(frames, 0);
  // And an edge of the cluster at a URL another edge's id was expected at is refused the same way.
  ctx.store.urls.set('edge-a', ctx.b.peerUrl!);
  assert.is((await send(ctx.b, NAME, '/')).res.statusCode, 502);
});

test('a lease that moved under the forwarder: the owner answers misdirected, the forwarder re-reads once and retries', async (ctx) => {
  assert.is((await send(ctx.b, NAME, '/')).res.statusCode, 200);
  // The same agent took its name over (a new epoch); B's directory still has the old one cached.
  ctx.store.claim(NAME, 'edge-a');
  const got = await send(ctx.b, NAME, '/after-move');
  assert.is(got.res.statusCode, 200);
  assert.is(got.body.toString(), 'hello from A');
  assert.is(await metric(ctx.a, 'jetty_peer_misdirected_total'), 1);
  assert.is(await metric(ctx.b, 'jetty_peer_misdirected_retries_total'), 1);
});

/** Opens one exchange on a raw authenticated peer connection to `edge`; resolves with its first answer chunk or its error. */
async function forwardRaw(edge: Edge, head: HTTPChunk): Promise<{ chunk?: HTTPChunk; err?: Error & { resetCode?: number } }> {
  const link = await PeerLink.connect({
    url: edge.peerUrl!,
    peerId: 'edge-a',
    edgeId: 'test',
    secret: TEST_PEER_SECRET,
    windowBytes: DEFAULT_WS_WINDOW_BYTES,
    metrics: new EdgeMetrics(() => ({ openExchanges: 0, sessionsByTransport: {} })),
    logger: silentLogger(),
  });
  try {
    const exchange = link.openExchange(head);
    void exchange.sink((async function* () {})()).catch(() => undefined);
    try {
      for await (const chunk of exchange.source) return { chunk };
      return {};
    } catch (err) {
      return { err: err as Error };
    }
  } finally {
    link.close(new Error('test done'));
  }
}

const head = (key: string, epoch: number): HTTPChunk =>
  withForwardFields({ kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'GET', target: '/', headers: [{ name: 'host', value: `${key}.localhost` }] }, { key, edgeId: 'edge-a', epoch });

test('a forwarded exchange for a tunnel the owner does not hold locally is refused, never forwarded again (one hop)', async (ctx) => {
  // A holds no lease of "elsewhere"; B does, with an agent: A would find it through its registry.
  const agentB = await startAgent(ctx.b, ctx.origin.url, 'elsewhere');
  ctx.extra.unshift(agentB);
  await waitFor(() => ctx.store.leases.has('elsewhere'), 5000, 'the lease on B');
  const wrongEpoch = await forwardRaw(ctx.a, head(NAME, 424242));
  assert.is(wrongEpoch.err?.resetCode, ResetCode.MISDIRECTED);
  // Even under an epoch A is told it holds, without a local agent it never sends it on to B.
  const lease = ctx.store.claim('elsewhere', 'edge-a');
  const notLocal = await forwardRaw(ctx.a, head('elsewhere', lease.epoch));
  assert.is(notLocal.err?.resetCode, ResetCode.MISDIRECTED);
  assert.is(await metric(ctx.b, 'jetty_peer_connections', '{direction="in"}'), 0);
  assert.is(await metric(ctx.a, 'jetty_peer_forwarded_exchanges_total', '{kind="http"}'), 0);
  // The right epoch is served.
  const [own] = ctx.store.leases.get(NAME)!;
  const served = await forwardRaw(ctx.a, head(NAME, own.epoch));
  assert.is(served.chunk?.status, 200);
});

test('a peer connection lost mid-exchange fails that exchange only; the next request connects again', async (ctx) => {
  const proxy = await Forwarder.start();
  proxy.target = ctx.a.peerPort;
  ctx.extra.push(proxy);
  ctx.store.urls.set('edge-a', `http://127.0.0.1:${proxy.port}`);
  let started = false;
  ctx.handler = (req, res) => {
    if (req.url === '/stream') {
      started = true;
      res.write('first part');
      return; // never ends by itself
    }
    res.end('fine');
  };
  const req = request({ host: '127.0.0.1', port: ctx.b.publicPort, path: '/stream', headers: { host: `${NAME}.localhost` }, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  await waitFor(() => started, 5000, 'the origin to start');
  const aborted = once(res, 'aborted');
  res.resume();
  const session = ctx.store.registries.get('edge-b')!.lastRemote!;
  assert.not.ok(session.stopped);
  proxy.cut();
  await aborted;
  // The session that used the lost connection is stopped; the registry makes a new one next time.
  await waitFor(() => session.stopped, 5000, 'the forwarding session to stop');
  const next = await send(ctx.b, NAME, '/next');
  assert.is(next.res.statusCode, 200);
  assert.is(next.body.toString(), 'fine');
});

test('hostile frames from an authenticated peer close that peer connection only', async (ctx) => {
  const url = `ws://127.0.0.1:${ctx.a.peerPort}${PEER_PATH}`;
  const hostile = new WebSocket(url, ['jetty.v1.proto'], { headers: peerAuthHeaders(TEST_PEER_SECRET, 'edge-x') });
  await once(hostile, 'open');
  // Forwarding through B opens its own connection to A, which must survive.
  assert.is((await send(ctx.b, NAME, '/')).res.statusCode, 200);
  hostile.send(Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]));
  const [code] = (await once(hostile, 'close')) as [number];
  assert.ok(code === 1002 || code === 1009, `close code ${code}`);
  assert.is((await send(ctx.b, NAME, '/')).res.statusCode, 200);
  assert.is(await metric(ctx.a, 'jetty_peer_connections', '{direction="in"}'), 1);
});

test('with a certificate the peer link is TLS: the peer URL is https and a peer verifies it with peer-ca', async (ctx) => {
  const pki = makeTestPki();
  ctx.extra.push({ close: () => pki.remove() });
  const store = new MemoryLeaseStore();
  const tls = { cert: pki.cert, key: pki.key };
  const c = await startClusterEdge(store, 'edge-c', { tls, peerCa: pki.ca });
  ctx.extra.unshift(c);
  const d = await startClusterEdge(store, 'edge-d', { tls, peerCa: pki.ca });
  ctx.extra.unshift(d);
  assert.match(c.peerUrl!, /^https:\/\/127\.0\.0\.1:\d+$/);
  const agent = await startAgent(c, ctx.origin.url, 'secure', { edge: new URL(`https://127.0.0.1:${c.publicPort}`), edgeCa: pki.ca });
  ctx.extra.unshift(agent);
  await waitFor(() => store.leases.has('secure'), 5000, 'the lease on C');
  const got = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: d.publicPort, path: '/', headers: { host: 'secure.localhost' }, ca: pki.ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.is(got.status, 200);
  assert.is(got.body, 'hello from A');
  // A plain-text client cannot speak to the TLS peer listener.
  const plain = new WebSocket(`ws://127.0.0.1:${c.peerPort}${PEER_PATH}`, ['jetty.v1.proto'], { headers: peerAuthHeaders(TEST_PEER_SECRET, 'edge-x') });
  let failed = false;
  plain.on('error', () => (failed = true));
  await new Promise((resolve) => plain.once('close', resolve));
  assert.ok(failed);
});

test.run();
