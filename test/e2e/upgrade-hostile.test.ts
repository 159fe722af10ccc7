import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { ChunkKind, END_CHUNK } from '../../src/codec/http-chunk.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { send, waitFor, within } from '../helpers/harness.js';
import { hostileEdgeSuite } from '../helpers/hostile-edge-suite.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';

const test = hostileEdgeSuite('e2e/upgrade-hostile');

/** A raw client's upgrade request to tunnel `name`, and everything it receives until the edge closes. */
async function upgradeRequest(edge: Edge, name: string): Promise<{ socket: Socket; answer: Promise<string> }> {
  const socket = connect(edge.publicPort, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  // 'close' whichever way it comes (events.once would reject on a reset's 'error').
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const answer = within(closed, 10_000, 'the edge to close').then(() => Buffer.concat(chunks).toString('latin1'));
  socket.write(`GET /ws HTTP/1.1\r\nHost: ${name}.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  return { socket, answer };
}

test('a 101 whose fields Node would refuse (CR/LF in a value) is the agent protocol error: 502, nothing of it written', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'split-101');
  const { answer } = await upgradeRequest(ctx.edge, 'split-101');
  const { stream, head } = await ctx.raw.nextExchange();
  // The request reached the agent with its upgrade fields.
  assert.ok(head.headers!.some((h) => h.name === 'Upgrade' && h.value === 'websocket'));
  assert.ok(head.headers!.some((h) => h.name === 'Connection' && h.value === 'upgrade'));
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 101, headers: [{ name: 'X-Evil', value: 'a\r\nSet-Cookie: pwned=1' }] } });
  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 502 /);
  assert.not.match(text, /pwned/);
  assert.not.match(text, /101/);
});

test('a 101 to a request that asked for no upgrade breaks that session (ERR_PROTOCOL), the client gets 502', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'stray-101');
  const pending = send(ctx.edge, 'stray-101', '/');
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 101, headers: [{ name: 'Upgrade', value: 'websocket' }] } });
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('raw bytes') } });
  assert.is((await pending).res.statusCode, 502);
  await ctx.raw.closed;
});

test('an agent that switches and then resets cuts the client connection (RST)', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'reset-after');
  const { socket, answer } = await upgradeRequest(ctx.edge, 'reset-after');
  let seen = '';
  socket.on('data', (d: Buffer) => (seen += d.toString('latin1')));
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 101, headers: [{ name: 'Connection', value: 'Upgrade' }, { name: 'Upgrade', value: 'websocket' }] } });
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('hello') } });
  // A RESET right behind them could overtake them (a reset drops what is queued): wait for the client.
  await waitFor(() => seen.endsWith('hello'), 5000, 'the switch and the first bytes');
  const reset = within(once(socket, 'error'), 5000, 'the cut') as Promise<[NodeJS.ErrnoException]>;
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.RESET, code: 2, reason: 'origin gone' } });
  // A cut, never a clean end: the client sees ECONNRESET, not a FIN it could take for a finished stream.
  assert.is((await reset)[0].code, 'ECONNRESET');
  const text = await answer;
  assert.is(text, 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello');
  await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'the exchange to end');
});

test('an agent that switches and ends its side half-closes the client, whose own FIN ends the exchange', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'half');
  const socket = connect({ port: ctx.edge.publicPort, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(`GET / HTTP/1.1\r\nHost: half.localhost\r\nConnection: Upgrade\r\nUpgrade: x-raw\r\n\r\n`);
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 101, headers: [{ name: 'Upgrade', value: 'x-raw' }] } });
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('bye') } });
  ctx.raw.send({ stream, chunk: END_CHUNK });
  await within(once(socket, 'end'), 5000, 'the edge FIN');
  assert.ok(Buffer.concat(chunks).toString().endsWith('\r\n\r\nbye'));
  // Still open the other way: what the client sends now reaches the agent, then its FIN as END.
  socket.end('last words');
  const data = await ctx.raw.next((f) => f.stream === stream && 'chunk' in f && f.chunk.kind === ChunkKind.DATA);
  assert.is(Buffer.from((data as { chunk: { data: Uint8Array } }).chunk.data).toString(), 'last words');
  await ctx.raw.next((f) => f.stream === stream && 'chunk' in f && f.chunk.kind === ChunkKind.END);
  await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'the exchange to end');
  socket.destroy();
});

test.run();
