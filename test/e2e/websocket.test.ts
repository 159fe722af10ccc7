import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import * as assert from 'uvu/assert';
import { ChunkKind, END_CHUNK, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { decodeWsFrameProto, MAX_WS_FRAME_BYTES } from '../../src/codec/ws-frame.js';
import { WS_SOCKET_HIGH_WATER_BYTES } from '../../src/streams/ws-mux.js';
import { hostileEdgeSuite } from '../helpers/hostile-edge-suite.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { send, startEdge, waitFor, within } from '../helpers/harness.js';

const test = hostileEdgeSuite('e2e/websocket');

test('a malformed frame closes that session (1002) and its pending exchange gets 502', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'bad-frame');
  const pending = send(ctx.edge, 'bad-frame', '/');
  await ctx.raw.nextExchange();
  ctx.raw.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
  await ctx.raw.closed;
  assert.is(ctx.raw.closeCode, 1002);
  assert.is((await pending).res.statusCode, 502);
  assert.is((await send(ctx.edge, 'bad-frame', '/')).res.statusCode, 404);
});

test('an oversize frame closes that session (1009)', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'too-big');
  ctx.raw.sendRaw(Buffer.alloc(MAX_WS_FRAME_BYTES + 1));
  await ctx.raw.closed;
  assert.is(ctx.raw.closeCode, 1009);
});

test('a frame for an unknown stream is answered with RESET on that stream only', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'unknown-stream');
  ctx.raw.send({ stream: 99, chunk: { kind: ChunkKind.DATA, data: Buffer.from('x') } });
  const reset = await ctx.raw.next((f) => f.stream === 99 && 'chunk' in f && f.chunk.kind === ChunkKind.RESET);
  assert.ok(reset);
  // The session still carries exchanges.
  const pending = send(ctx.edge, 'unknown-stream', '/');
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 204, headers: [] } });
  ctx.raw.send({ stream, chunk: END_CHUNK });
  assert.is((await pending).res.statusCode, 204);
});

test('frames for an exchange that already ended are dropped; the next exchange works', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'late-frames');
  for (const round of [1, 2]) {
    const pending = send(ctx.edge, 'late-frames', '/');
    const { stream } = await ctx.raw.nextExchange();
    ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'content-length', value: '2' }] } });
    ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('ok') } });
    ctx.raw.send({ stream, chunk: END_CHUNK });
    const { body } = await pending;
    assert.is(body.toString(), 'ok', `round ${round}`);
    await waitFor(() => ctx.edge.stats().openExchanges === 0);
    ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('late') } });
  }
  assert.is(ctx.raw.ws.readyState, ctx.raw.ws.OPEN);
});

// The second case guards against a DATA chunk without its bytes field: it decoded without a
// byteLength, turned the edge's remaining credit into NaN, and no overrun was caught after it.
for (const [how, first] of [
  ['', []],
  [' (after a DATA chunk without bytes)', [{ kind: ChunkKind.DATA }]],
] as Array<[string, HTTPChunk[]]>) {
  test(`a peer that overruns its credit window is a protocol error that closes its session${how}`, async (ctx) => {
    ctx.raw = await RawWsAgent.connect(ctx.edge, 'overrun');
    // A public client that reads nothing: the edge consumes nothing and grants no more credit.
    const req = request({ host: '127.0.0.1', port: ctx.edge.publicPort, path: '/', headers: { host: 'overrun.localhost' }, agent: false });
    req.on('error', () => undefined);
    const response = once(req, 'response').then(([res]) => {
      (res as IncomingMessage).pause();
      return res as IncomingMessage;
    });
    req.end();
    const { stream } = await ctx.raw.nextExchange();
    const registered = await ctx.raw.next((f) => 'edge' in f && !!f.edge.registered);
    const window = ('edge' in registered && registered.edge.registered?.window) || 0;
    assert.ok(window > 0);
    ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [] } });
    for (const chunk of first) ctx.raw.send({ stream, chunk });
    const block = Buffer.alloc(128 * 1024);
    // More than the window plus what the paused client's socket buffers can absorb.
    for (let sent = 0; sent <= window * 2 + 32 * 1024 * 1024; sent += block.length) ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: block } });
    await within(ctx.raw.closed, 20_000, 'the session to be closed');
    assert.is(ctx.raw.closeCode, 1002, ctx.raw.closeReason);
    assert.match(ctx.raw.closeReason, /credit/);
    // Reading what was buffered ends in an error: the response was cut, never completed.
    const res = await response;
    const outcome = await new Promise<string>((resolve) => {
      res.on('error', () => resolve('error'));
      res.on('end', () => resolve(res.complete ? 'complete' : 'cut'));
      res.resume();
    });
    assert.is.not(outcome, 'complete');
  });
}

// The second case guards against liveness bought with made-up pongs: any Pong used to count, so an
// agent could stay registered without ever answering a ping.
const deadAgents: Array<[string, (raw: RawWsAgent) => void]> = [
  ['stops answering pings', () => undefined],
  [
    'answers pings with the wrong nonce',
    (raw) =>
      raw.ws.on('message', (data: Buffer) => {
        const f = decodeWsFrameProto(data);
        if ('edge' in f && f.edge.ping) raw.send({ stream: 0, agent: { pong: { nonce: f.edge.ping.nonce + 1000 } } });
      }),
  ],
];

for (const [behaviour, answer] of deadAgents) {
  test(`an agent that ${behaviour} is declared dead: its exchange gets 502, its name is freed`, async () => {
    const edge = await startEdge({ pingIntervalMs: 100, reconnectGraceMs: 0 });
    const raw = await RawWsAgent.connect(edge, 'silent');
    answer(raw);
    try {
      const pending = send(edge, 'silent', '/');
      await raw.nextExchange();
      await within(raw.closed, 5000, 'the session to be declared dead');
      assert.is((await pending).res.statusCode, 502);
      assert.is((await send(edge, 'silent', '/')).res.statusCode, 404);
      assert.is(edge.stats().sessions, 0);
    } finally {
      await raw.close();
      await edge.close();
    }
  });
}

const headers = (status: number): HTTPChunk => ({ kind: ChunkKind.HEADERS, status, headers: [] });
const data = (text: string): HTTPChunk => ({ kind: ChunkKind.DATA, data: Buffer.from(text) });
const TRAILERS: HTTPChunk = { kind: ChunkKind.TRAILERS, headers: [{ name: 'x-sum', value: '1' }] };

// Each of these used to be queued for a reader that would never take it (only DATA bytes were
// checked), so repeating it grew the edge's memory without bound.
const outOfOrder: Array<[string, HTTPChunk[]]> = [
  ['DATA before HEADERS', [data('x')]],
  ['a second final HEADERS', [headers(200), headers(200)]],
  ['request HEADERS as a response', [{ kind: ChunkKind.HEADERS, method: 'GET', target: '/', headers: [] }]],
  ['a second TRAILERS', [headers(200), TRAILERS, TRAILERS]],
  ['DATA after TRAILERS', [headers(200), TRAILERS, data('x')]],
  ['DATA after END', [headers(200), END_CHUNK, data('x'), data('')]],
];

for (const [what, chunks] of outOfOrder) {
  test(`${what} is a protocol error that closes that session (1002); its exchange fails`, async (ctx) => {
    ctx.raw = await RawWsAgent.connect(ctx.edge, 'order');
    const pending = send(ctx.edge, 'order', '/').catch((err: Error) => err);
    const { stream } = await ctx.raw.nextExchange();
    ctx.raw.sendBurst(chunks.map((chunk) => ({ stream, chunk })));
    await within(ctx.raw.closed, 5000, 'the close');
    assert.is(ctx.raw.closeCode, 1002, ctx.raw.closeReason);
    const outcome = await pending;
    // Either a 502 page, or (once the head went out) a cut response.
    assert.ok(outcome instanceof Error || outcome.res.statusCode === 502 || !outcome.res.complete);
  });
}

// Each frame for a stream that never existed was answered with a RESET queued on the socket, read
// or not: an agent that sends without reading grew the edge's send buffer without bound.
test('a flood of frames for unknown streams from an agent that does not read leaves the edge send buffer bounded', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'flood');
  ctx.raw.ws.pause();
  const frames = (function* () {
    for (let i = 0; i < 400_000; i++) yield { stream: 1001 + 2 * (i % 1000), chunk: data('x') };
    // Processed after the flood: a protocol error that ends the session, so the test knows when.
    yield RawWsAgent.hello('again');
  })();
  ctx.raw.sendBurst(frames);
  await waitFor(() => ctx.edge.stats().sessions === 1, 30_000, 'the flood to be processed');
  const buffered = ctx.edge.stats().wsBufferedBytes;
  assert.ok(buffered <= WS_SOCKET_HIGH_WATER_BYTES + 64 * 1024, `${buffered} bytes buffered`);
});

test.run();
