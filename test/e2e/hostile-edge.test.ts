import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { WebSocketServer } from 'ws';
import { Agent } from '../../src/agent/agent.js';
import { encodeWsFrameProto, WS_PROTOCOL_PROTO } from '../../src/codec/ws-frame.js';
import type { EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { silentLogger } from '../../src/logger.js';
import { startOrigin, type Origin } from '../helpers/harness.js';

interface Ctx {
  origin: Origin;
  servers: Server[];
  /** Requests (and upgrades) the "other host" saw, with their Authorization header. */
  elsewhere: Array<{ url: string; authorization?: string }>;
  evilPort: number;
}

const test = suite<Ctx>('e2e/hostile-edge');

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

test.before.each(async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end());
  ctx.servers = [];
  ctx.elsewhere = [];
  const evil = createServer((req, res) => {
    ctx.elsewhere.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.end();
  });
  evil.on('upgrade', (req: IncomingMessage, socket) => {
    ctx.elsewhere.push({ url: req.url ?? '', authorization: req.headers.authorization });
    socket.destroy();
  });
  ctx.servers.push(evil);
  ctx.evilPort = await listen(evil);
});

test.after.each(async (ctx) => {
  await ctx.origin.close();
  for (const s of ctx.servers) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

/** A fake edge: discovery from `discovery(port)`, and a WebSocket endpoint that answers Hello with `registered`. */
async function fakeEdge(ctx: Ctx, discovery: (port: number) => unknown, registered?: NonNullable<EdgeMessage['registered']>): Promise<URL> {
  let port = 0;
  const http = createServer((_req, res) => res.end(JSON.stringify(discovery(port))));
  const wss = new WebSocketServer({ server: http, handleProtocols: () => WS_PROTOCOL_PROTO });
  wss.on('connection', (ws) => ws.once('message', () => registered && ws.send(encodeWsFrameProto({ stream: 0, edge: { registered } }))));
  http.on('close', () => wss.close());
  ctx.servers.push(http);
  port = await listen(http);
  return new URL(`http://127.0.0.1:${port}`);
}

async function refusal(ctx: Ctx, edge: URL): Promise<string> {
  try {
    const agent = await Agent.start({ edge, origin: ctx.origin.url, name: 'mine', token: 'jt_secret', transport: 'websocket', logger: silentLogger() });
    await agent.close();
    return 'accepted';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

// A hostile or broken edge used to be able to point the agent's WebSocket (and its token) at any host
// through the discovery answer's path: `new URL(path, edge)` follows absolute and scheme-relative URLs.
test('a discovery answer that points the WebSocket at another host is refused; the token never goes there', async (ctx) => {
  for (const path of [`http://127.0.0.1:${ctx.evilPort}/_jetty/ws`, `//127.0.0.1:${ctx.evilPort}/_jetty/ws`, `/\\127.0.0.1:${ctx.evilPort}/_jetty/ws`]) {
    const edge = await fakeEdge(ctx, (port) => ({ version: 1, domain: 'localhost', publicPort: port, transports: { websocket: { path } } }));
    assert.is(await refusal(ctx, edge), 'ERR_PROTOCOL', path);
  }
  assert.equal(ctx.elsewhere, []);
});

test('a Registered whose URL names another host or another tunnel is refused', async (ctx) => {
  for (const url of [`http://127.0.0.1:${ctx.evilPort}/`, 'http://mine.localhost.evil.example/', 'http://other.localhost/', 'http://mine.localhost/\x1b[2J']) {
    const edge = await fakeEdge(ctx, (port) => ({ version: 1, domain: 'localhost', publicPort: port, transports: { websocket: { path: '/_jetty/ws' } } }), {
      name: 'mine',
      url,
      sessionId: 'sid',
      window: 262144,
      pingIntervalMs: 60_000,
    });
    assert.is(await refusal(ctx, edge), 'ERR_PROTOCOL', url);
  }
  assert.equal(ctx.elsewhere, []);
});

test.run();
