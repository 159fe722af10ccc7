import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { RawHttpClient, rawGet } from '../helpers/raw-http.js';
import { DEFAULT_LIMITS } from '../../src/edge/limits.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from '../helpers/harness.js';

interface Ctx {
  edge: Edge;
  origin: Origin;
  agent: Agent;
  clients: RawHttpClient[];
}

const NAME = 'demo';
const KEEP_ALIVE_MS = 300;

const test = suite<Ctx>('e2e/public-listener');

test.before(async (ctx) => {
  ctx.origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ headers: req.headers, trailers: req.trailers })));
  });
  ctx.edge = await startEdge({ limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS } });
  ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME);
});

test.before.each((ctx) => {
  ctx.clients = [];
});

test.after.each((ctx) => {
  for (const c of ctx.clients) c.close();
});

test.after(async (ctx) => {
  await ctx.agent.close();
  await ctx.edge.close();
  await ctx.origin.close();
});

async function client(ctx: Ctx, localAddress?: string): Promise<RawHttpClient> {
  const c = await RawHttpClient.connect(ctx.edge.publicPort, localAddress);
  ctx.clients.push(c);
  return c;
}

/** Number of complete responses (status lines) received so far. */
const responses = (text: string): number => text.split('HTTP/1.1 ').length - 1;

test('a keep-alive connection times out again after a tunnelled response', async (ctx) => {
  // Guards against the router disarming the socket timer after relaying: idle connections then stayed open for ever.
  const c = await client(ctx);
  c.write(rawGet(`${NAME}.localhost`));
  await c.until((t) => responses(t) === 1 && t.endsWith('}'), 'the first response');
  // Still usable: the timer closes only idle connections.
  c.write(rawGet(`${NAME}.localhost`));
  await c.until((t) => responses(t) === 2 && t.endsWith('}'), 'the second response on the same connection');
  const idleFrom = Date.now();
  await c.closedByPeer('the keep-alive timeout to close the connection', KEEP_ALIVE_MS + 4000);
  assert.ok(Date.now() - idleFrom >= KEEP_ALIVE_MS - 50, 'closed before the keep-alive timeout');
});

interface Seen {
  headers: Record<string, string>;
  trailers: Record<string, string>;
}

test('a Host whose port is not digits is refused (400), never routed; the origin gets the normalised Host', async (ctx) => {
  // Guards against `Host: demo.localhost:@evil.example` being routed to demo and passed on raw to the origin.
  let hits = 0;
  ctx.origin.server.once('request', () => hits++);
  const c = await client(ctx);
  c.write(rawGet('demo.localhost:@evil.example', '/', true));
  await c.closedByPeer();
  assert.match(c.received, /^HTTP\/1.1 400 /);
  assert.match(c.received, /x-jetty-error: ERR_BAD_REQUEST/i);
  assert.not.match(c.received, 'evil');
  const { body } = await send(ctx.edge, NAME, '/', { headers: ['Host', 'Demo.LOCALHOST.:08080'] });
  const seen = JSON.parse(body.toString()) as Seen;
  assert.is(seen.headers.host, 'demo.localhost:8080');
  assert.is(seen.headers['x-forwarded-host'], 'demo.localhost:8080');
  assert.is(hits, 1);
});

test('X-Real-IP and X-Forwarded-Port/-Ssl/-Prefix from an untrusted client never reach the origin', async (ctx) => {
  // Guards against a client forging the address, port, scheme or path prefix an origin trusts from its proxy.
  const forged = { 'x-real-ip': '6.6.6.6', 'x-forwarded-port': '443', 'x-forwarded-ssl': 'on', 'x-forwarded-prefix': '/admin', 'x-forwarded-for': '6.6.6.6' };
  const { body } = await send(ctx.edge, NAME, '/', { headers: forged });
  const seen = JSON.parse(body.toString()) as Seen;
  for (const name of Object.keys(forged)) assert.is.not(seen.headers[name], (forged as Record<string, string>)[name], name);
  assert.is(seen.headers['x-forwarded-for'], '127.0.0.1');
});

test('request trailers are filtered like headers', async (ctx) => {
  // Guards against framing, routing or forwarding fields reaching the origin behind the body.
  const req = request({ host: '127.0.0.1', port: ctx.edge.publicPort, method: 'POST', path: '/', headers: { host: `${NAME}.localhost`, trailer: 'x-sum' }, agent: false });
  req.write('body');
  // (Node's parser itself refuses Content-Length in trailers with 400.)
  req.addTrailers([['X-Sum', '1'], ['Host', 'evil.example'], ['X-Forwarded-For', '6.6.6.6'], ['X-Real-IP', '6.6.6.6'], ['Connection', 'x-sum2'], ['X-Sum2', '2']]);
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const parts: Buffer[] = [];
  for await (const d of res) parts.push(d as Buffer);
  const seen = JSON.parse(Buffer.concat(parts).toString()) as Seen;
  assert.equal(seen.trailers, { 'x-sum': '1' });
});

/** A POST that sends its head and one chunk, then nothing: it holds its exchange open. */
function drip(name: string, extra = ''): string {
  return `POST /drip HTTP/1.1\r\nHost: ${name}.localhost\r\nTransfer-Encoding: chunked\r\n${extra}\r\n1\r\nx\r\n`;
}

/** An origin that answers GETs at once and holds uploads open, counting them. */
async function dripOrigin(): Promise<Origin & { uploads: () => number }> {
  let open = 0;
  const origin = await startOrigin((req, res) => {
    if (req.method === 'GET') return void res.end('served');
    open++;
    req.on('close', () => open--);
    req.resume();
  });
  return Object.assign(origin, { uploads: () => open });
}

test('128 dripping uploads from one address cannot fill a tunnel: the address is capped, others are served', async (ctx) => {
  // Guards against one client address holding every exchange of an agent (128) with slow uploads.
  const origin = await dripOrigin();
  const agent = await startAgent(ctx.edge, origin.url, 'drip');
  try {
    const cap = DEFAULT_LIMITS.maxConnectionsPerIp;
    const drips = await Promise.all(Array.from({ length: 128 }, () => client(ctx)));
    for (const d of drips) d.write(drip('drip'));
    await waitFor(() => origin.uploads() === cap && drips.filter((d) => d.ended).length === 128 - cap, 5000, `${cap} uploads in flight and the rest refused`);
    // Another address reaches the same tunnel.
    const other = await client(ctx, '127.0.0.2');
    other.write(rawGet('drip.localhost', '/', true));
    await other.closedByPeer();
    assert.match(other.received, /^HTTP\/1.1 200 [^]*served$/);
    // Closing the uploads gives the address its slots back.
    for (const d of drips) d.close();
    await waitFor(() => origin.uploads() === 0, 5000, 'uploads to end');
    const again = await client(ctx);
    again.write(rawGet('drip.localhost', '/', true));
    await again.closedByPeer();
    assert.match(again.received, /^HTTP\/1.1 200 /);
  } finally {
    await agent.close();
    await origin.close();
  }
});

test('behind a trusted proxy, exchanges are capped per forwarded client (429), the proxy connections are not', async (ctx) => {
  // Guards against a cap per peer address refusing everyone behind a proxy, or none of one client behind it.
  const origin = await dripOrigin();
  const edge = await startEdge({ trustedProxies: ['127.0.0.1'], limits: { maxConnectionsPerIp: 2 } });
  const agent = await startAgent(edge, origin.url, 'proxied');
  try {
    const drips = await Promise.all(Array.from({ length: 3 }, () => RawHttpClient.connect(edge.publicPort)));
    ctx.clients.push(...drips);
    for (const d of drips) d.write(drip('proxied', 'X-Forwarded-For: 10.0.0.1, 198.51.100.1\r\n'));
    await waitFor(() => origin.uploads() === 2 && drips.some((d) => d.received.startsWith('HTTP/1.1 429')), 5000, 'two uploads and one 429');
    assert.match(drips.find((d) => d.received !== '')!.received, /x-jetty-error: ERR_CLIENT_LIMIT/i);
    const other = await RawHttpClient.connect(edge.publicPort);
    ctx.clients.push(other);
    other.write(`GET / HTTP/1.1\r\nHost: proxied.localhost\r\nX-Forwarded-For: 198.51.100.2\r\nConnection: close\r\n\r\n`);
    await other.closedByPeer();
    assert.match(other.received, /^HTTP\/1.1 200 /);
  } finally {
    for (const c of ctx.clients) c.close();
    await agent.close();
    await edge.close();
    await origin.close();
  }
});

test.run();
