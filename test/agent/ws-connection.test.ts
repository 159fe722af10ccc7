import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { WebSocketServer, type WebSocket } from 'ws';
import { OriginProxy } from '../../src/agent/origin-proxy.js';
import { WsConnection } from '../../src/agent/ws-connection.js';
import type { ExchangeHandler, SessionClient } from '../../src/agent/session-client.js';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { WS_CODECS, WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO, type WsCodecName, type WsFrame } from '../../src/codec/ws-frame.js';
import { ProtocolError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { startOrigin, within, type Origin } from '../helpers/harness.js';

interface Ctx {
  edge: WebSocketServer;
  origin: Origin;
  proxy: OriginProxy;
  conn?: SessionClient;
}

const test = suite<Ctx>('agent/ws-connection');
const WINDOW = 256 * 1024;

test.before(async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('origin'));
  ctx.proxy = new OriginProxy({ origin: ctx.origin.url, logger: silentLogger() });
});

test.before.each(async (ctx) => {
  // A hostile edge: it speaks whatever the test makes it say.
  ctx.edge = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => [...offered][0] });
  await once(ctx.edge, 'listening');
});

test.after.each(async (ctx) => {
  ctx.conn?.abort(new Error('test over'));
  ctx.conn = undefined;
  for (const ws of ctx.edge.clients) ws.terminate();
  await new Promise<void>((resolve) => ctx.edge.close(() => resolve()));
});

test.after(async (ctx) => {
  ctx.proxy.close();
  await ctx.origin.close();
});

function connect(ctx: Ctx, codec: WsCodecName = WS_PROTOCOL_PROTO, onExchange?: ExchangeHandler): Promise<SessionClient> {
  return WsConnection.connect({
    url: `ws://127.0.0.1:${(ctx.edge.address() as AddressInfo).port}/_jetty/ws`,
    codec,
    name: 'demo',
    version: 'test',
    windowBytes: WINDOW,
    logger: silentLogger(),
    onExchange: onExchange ?? ((head, exchange) => ctx.proxy.serve(head, exchange)),
  });
}

/** The edge side of the agent's socket, once the agent's Hello arrived; `send` encodes with its codec. */
async function edgeSide(ctx: Ctx): Promise<{ ws: WebSocket; send: (frame: WsFrame) => void; closed: Promise<number> }> {
  const [ws] = (await once(ctx.edge, 'connection')) as [WebSocket];
  const codec = WS_CODECS[ws.protocol as WsCodecName];
  const closed = new Promise<number>((resolve) => ws.on('close', (code: number) => resolve(code)));
  await once(ws, 'message');
  return { ws, send: (frame) => ws.send(codec.encode(frame), { binary: codec.binary }), closed };
}

const registered: WsFrame = { stream: 0, edge: { registered: { name: 'demo', url: 'http://demo.localhost', sessionId: 's1', window: WINDOW, pingIntervalMs: 0 } } };

// A close reason built from the edge's text was cut by characters, not bytes: `ws` threw in the
// agent's message handler and the agent process died.
test('an edge frame with a long non-ASCII type fails the registration with ERR_PROTOCOL; the agent lives on', async (ctx) => {
  const connecting = connect(ctx, WS_PROTOCOL_JSON).catch((err: unknown) => err);
  const edge = await edgeSide(ctx);
  edge.ws.send(JSON.stringify({ stream: 0, type: 'é'.repeat(100) }));
  const err = await within(connecting);
  assert.instance(err, ProtocolError);
  assert.is(await within(edge.closed, 5000, 'the close'), 1002);
});

// A request the origin client refuses (a space in the target) made the exchange handler reject,
// unhandled: the agent process died on the edge's word. The codec now refuses such a target (next
// test); any other failure of the handler still closes only its session.
test('an exchange whose handler fails closes that session only (1011); the connection reports closed', async (ctx) => {
  const connecting = connect(ctx, WS_PROTOCOL_PROTO, () => {
    throw new TypeError('a bug in the exchange handler');
  });
  const edge = await edgeSide(ctx);
  edge.send(registered);
  ctx.conn = await within(connecting);
  edge.send({ stream: 1, chunk: { kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'GET', target: '/handler-fails', headers: [] } });
  assert.is(await within(edge.closed, 5000, 'the close'), 1011);
  assert.ok(await within(ctx.conn.closed, 5000, 'the session to end'));
});

test('a request target the origin client would refuse is a protocol error from the edge (1002)', async (ctx) => {
  const connecting = connect(ctx);
  const edge = await edgeSide(ctx);
  edge.send(registered);
  ctx.conn = await within(connecting);
  edge.send({ stream: 1, chunk: { kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'GET', target: '/a b', headers: [] } });
  assert.is(await within(edge.closed, 5000, 'the close'), 1002);
  assert.ok(await within(ctx.conn.closed, 5000, 'the session to end'));
});

// Chunks the agent's reader would never take (a second request HEADERS, DATA after END) were queued
// without limit.
test('request chunks out of order from the edge are a protocol error that closes the session (1002)', async (ctx) => {
  const connecting = connect(ctx);
  const edge = await edgeSide(ctx);
  edge.send(registered);
  ctx.conn = await within(connecting);
  const head = { kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'POST', target: '/', headers: [] };
  edge.send({ stream: 1, chunk: head });
  edge.send({ stream: 1, chunk: head });
  assert.is(await within(edge.closed, 5000, 'the close'), 1002);
  await within(ctx.conn.closed, 5000, 'the session to end');
});

test('an edge that announces a window below the minimum is refused', async (ctx) => {
  const connecting = connect(ctx).catch((err: unknown) => err);
  const edge = await edgeSide(ctx);
  edge.send({ stream: 0, edge: { registered: { name: 'demo', url: 'http://demo.localhost', sessionId: 's1', window: 1, pingIntervalMs: 0 } } });
  assert.instance(await within(connecting), ProtocolError);
  assert.is(await within(edge.closed, 5000, 'the close'), 1002);
});

test.run();
