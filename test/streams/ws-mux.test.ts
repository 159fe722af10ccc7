import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { WebSocket, WebSocketServer } from 'ws';
import { ChunkKind, dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_PROTO, type WsFrame } from '../../src/codec/ws-frame.js';
import { ProtocolError, SessionFaultError } from '../../src/errors.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { MAX_QUEUED_CHUNKS } from '../../src/streams/ws-credit.js';
import { WS_SEND_BUFFER_LIMIT_BYTES, WsMux, type WsMuxInit } from '../../src/streams/ws-mux.js';
import { gatherPool } from '../../src/streams/gathering-reader.js';
import { readableData } from '../../src/streams/http-source.js';
import { patternBytes, waitFor, within } from '../helpers/harness.js';

const test = suite('streams/ws-mux');
const WINDOW = 256 * 1024;
const MiB = 1024 * 1024;

/**
 * An edge-role and an agent-role mux over a real loopback WebSocket. `edgeInit` overrides the edge
 * mux's handlers; `edgeClosed` settles with the error that ended it. Tests that play a hostile agent
 * write raw frames on `client` (the agent mux there only reads).
 */
async function pair(edgeInit: Partial<WsMuxInit> = {}, agentInit: Partial<WsMuxInit> = {}) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const [serverSocket] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open').catch(() => undefined);
  const inbound: Array<{ head: HTTPChunk; exchange: ExchangeDuplex }> = [];
  const codec = WS_CODECS[WS_PROTOCOL_PROTO];
  const noop = (): void => undefined;
  let edgeClose!: (err: Error) => void;
  const edgeClosed = new Promise<Error>((resolve) => (edgeClose = resolve));
  const edge = new WsMux({ socket: serverSocket, codec, role: 'edge', localWindow: WINDOW, onControl: noop, onClose: edgeClose, ...edgeInit });
  const agent = new WsMux({
    socket: client,
    codec,
    role: 'agent',
    localWindow: WINDOW,
    onControl: noop,
    onClose: noop,
    onExchange: (head, exchange) => {
      inbound.push({ head, exchange });
    },
    ...agentInit,
  });
  edge.remoteWindow = WINDOW;
  agent.remoteWindow = WINDOW;
  const close = async (): Promise<void> => {
    edge.close(new Error('test over'));
    client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
  const sendRaw = (frames: Iterable<WsFrame>): void => {
    for (const f of frames) client.send(encodeWsFrameProto(f));
  };
  return { edge, agent, inbound, close, client, serverSocket, edgeClosed, sendRaw };
}

const head = (id: string): HTTPChunk => ({ kind: ChunkKind.HEADERS, exchangeId: id, method: 'POST', target: '/', headers: [] });

/** A request body of `total` bytes that counts what the sink has pulled. */
function body(id: string, total: number, counter: { pulled: number }, block = 64 * 1024): AsyncGenerator<HTTPChunk> {
  return (async function* () {
    yield head(id);
    for (let sent = 0; sent < total; sent += block) {
      counter.pulled += block;
      yield dataChunk(Buffer.alloc(block, 1));
    }
  })();
}

async function drain(exchange: ExchangeDuplex): Promise<number> {
  let n = 0;
  for await (const c of exchange.source) if (c.kind === ChunkKind.DATA) n += c.data!.byteLength;
  return n;
}

test('a stalled exchange holds its sender to the window while another on the same socket runs to completion', async () => {
  const { edge, inbound, close } = await pair();
  try {
    // Baseline: the same transfer alone on a socket.
    const alone = { pulled: 0 };
    const a0 = edge.open(head('alone'));
    const t0 = performance.now();
    void a0.sink(body('alone', 32 * MiB, alone));
    await waitFor(() => inbound.length === 1);
    assert.is(await drain(inbound[0].exchange), 32 * MiB);
    const aloneMs = performance.now() - t0;

    const stalled = { pulled: 0 };
    const moving = { pulled: 0 };
    const s = edge.open(head('stalled'));
    const stalledSink = s.sink(body('stalled', 64 * MiB, stalled)).catch((err: Error) => err);
    await waitFor(() => inbound.length === 2);
    // Nobody reads the stalled exchange on the agent side.
    const m = edge.open(head('moving'));
    const t1 = performance.now();
    void m.sink(body('moving', 32 * MiB, moving));
    await waitFor(() => inbound.length === 3);
    assert.is(await drain(inbound[2].exchange), 32 * MiB);
    const besideMs = performance.now() - t1;

    // The stalled sender stops after its window (plus the one chunk it pulled and is holding).
    assert.ok(stalled.pulled <= WINDOW + 64 * 1024, `stalled sender pulled ${stalled.pulled} bytes`);
    // Not a speed target (that lives in the bench): only that the stall does not serialise the socket.
    assert.ok(besideMs < aloneMs * 4 + 1000, `beside a stalled exchange: ${besideMs.toFixed(0)} ms, alone: ${aloneMs.toFixed(0)} ms`);
    s.abort(new Error('test over'));
    assert.ok((await stalledSink) instanceof Error);
  } finally {
    await close();
  }
});

test('credit returns only as the reader consumes, and the bytes arrive intact', async () => {
  const { edge, inbound, close } = await pair();
  try {
    const counter = { pulled: 0 };
    const e = edge.open(head('slow'));
    const sending = e.sink(body('slow', 4 * MiB, counter, 10_000));
    await waitFor(() => inbound.length === 1);
    const it = inbound[0].exchange.source[Symbol.asyncIterator]();
    let got = 0;
    for (;;) {
      // The sender can never be more than a window (and one chunk) ahead of this reader.
      assert.ok(counter.pulled - got <= WINDOW + 10_000, `sender ${counter.pulled - got} bytes ahead`);
      const { value, done } = await it.next();
      if (done) break;
      got += value.data!.byteLength;
      if (got % (512 * 1024) < 10_000) await new Promise((r) => setTimeout(r, 1));
    }
    await sending;
    assert.ok(got >= 4 * MiB);
    assert.is(got, counter.pulled);
  } finally {
    await close();
  }
});

test('a full-size DATA chunk gets through the smallest window (split to fit the credit)', async () => {
  const { edge, inbound, close } = await pair();
  try {
    const e = edge.open(head('big'));
    const sending = e.sink(body('big', 4 * MiB, { pulled: 0 }, WINDOW)).catch((err: Error) => err);
    await waitFor(() => inbound.length === 1);
    assert.is(await drain(inbound[0].exchange), 4 * MiB);
    assert.is(await sending, undefined);
  } finally {
    await close();
  }
});

const response = (stream: number, frames: number, chunk: HTTPChunk): WsFrame[] => [
  { stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [] } },
  ...Array.from({ length: frames }, () => ({ stream, chunk })),
];

// Only DATA bytes were charged: empty DATA (or 1xx HEADERS) for a reader that takes nothing was
// queued without limit.
const uncharged: Array<[string, WsFrame[]]> = [
  ['empty DATA', response(1, MAX_QUEUED_CHUNKS + 1, dataChunk(new Uint8Array(0)))],
  ['informational HEADERS', Array.from({ length: MAX_QUEUED_CHUNKS + 1 }, () => ({ stream: 1, chunk: { kind: ChunkKind.HEADERS, status: 103, headers: [{ name: 'link', value: '</a>' }] } }))],
];

for (const [what, frames] of uncharged) {
  test(`${what} for a stalled reader is charged: the session closes once the window is spent`, async () => {
    const { edge, sendRaw, client, edgeClosed, close } = await pair();
    try {
      const stalled = edge.open(head('stalled'));
      sendRaw(frames);
      const [code] = (await within(once(client, 'close'), 5000, 'the close')) as [number];
      assert.is(code, 1002);
      assert.match((await within(edgeClosed)).message, /credit/);
      assert.ok(stalled.error);
    } finally {
      await close();
    }
  });
}

// An exception in a handler escaped the socket's event handler and ended the process.
for (const [how, onControl] of [
  ['throws', () => { throw new Error('boom'); }],
  ['rejects', () => Promise.reject(new Error('boom'))],
] as const) {
  test(`a control handler that ${how} closes that session (1011) and reports a SessionFaultError`, async () => {
    const faults: Error[] = [];
    const { edge, sendRaw, client, edgeClosed, close } = await pair({ onControl, onFault: (err) => faults.push(err) });
    try {
      sendRaw([{ stream: 0, agent: { drain: { gracePeriodMs: 0 } } }]);
      const [code] = (await within(once(client, 'close'), 5000, 'the close')) as [number];
      assert.is(code, 1011);
      assert.instance(await within(edgeClosed), SessionFaultError);
      assert.is(faults.length, 1);
      assert.is((faults[0].cause as Error).message, 'boom');
      assert.ok(edge.isClosed);
    } finally {
      await close();
    }
  });
}

// Control frames were sent whatever the socket held: a peer that never reads grew the buffer without bound.
test('a peer that does not read is closed once the send buffer passes its bound', async () => {
  const { edge, client, serverSocket, edgeClosed, close } = await pair();
  try {
    client.pause();
    const big: WsFrame = { stream: 0, edge: { registered: { name: 'x', url: 'u'.repeat(60_000), sessionId: '', window: 0, pingIntervalMs: 0 } } };
    let sent = 0;
    while (!edge.isClosed && sent < 10_000) {
      edge.sendControl(big);
      sent++;
      assert.ok(serverSocket.bufferedAmount <= WS_SEND_BUFFER_LIMIT_BYTES + 64 * 1024, `${serverSocket.bufferedAmount} bytes buffered`);
    }
    assert.instance(await within(edgeClosed), ProtocolError);
  } finally {
    await close();
  }
});

// Regression: every frame was a socket write of its own (a syscall per exchange each way); frames of
// one event-loop turn now leave together.
test('frames sent in one turn of the event loop leave in one socket write, and all arrive', async () => {
  const { edge, inbound, close, serverSocket } = await pair();
  try {
    const raw = (serverSocket as unknown as { _socket: { _writeGeneric(...a: unknown[]): unknown } })._socket;
    let writes = 0;
    const original = raw._writeGeneric;
    raw._writeGeneric = function (this: unknown, ...a: unknown[]) {
      writes++;
      return original.apply(this, a);
    };
    for (let i = 0; i < 10; i++) edge.open({ ...head(`t${i}`), end: false });
    await within(waitFor(() => inbound.length === 10, 5000, 'ten exchanges at the agent'), 6000, 'ten exchanges');
    assert.is(writes, 1);
    assert.equal(inbound.map((x) => x.head.exchangeId), Array.from({ length: 10 }, (_, i) => `t${i}`));
  } finally {
    await close();
  }
});

/** `total` patterned bytes written fast to one end of a loopback TCP connection; the other end, and the bytes' SHA-256. */
async function tcpSource(total: number): Promise<{ socket: Socket; sha256: string; close: () => void }> {
  const server = createServer((far) => {
    far.on('error', () => undefined);
    void (async () => {
      for (let sent = 0; sent < total; sent += BLOCK) if (!far.write(pattern.subarray(0, Math.min(BLOCK, total - sent)))) await once(far, 'drain');
      far.end();
    })();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const h = createHash('sha256');
  for (let sent = 0; sent < total; sent += BLOCK) h.update(pattern.subarray(0, Math.min(BLOCK, total - sent)));
  return { socket, sha256: h.digest('hex'), close: () => (socket.destroy(), server.close()) };
}
const BLOCK = 64 * 1024;
const pattern = patternBytes(BLOCK, 9);

/** Hashes an exchange's DATA, pausing now and then so its sender's reads pile up and are gathered. */
async function hashOf(exchange: ExchangeDuplex): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of exchange.source) {
    if (c.kind !== ChunkKind.DATA) continue;
    h.update(c.data!);
    if (++n % 8 === 0) await new Promise((r) => setTimeout(r, 2));
  }
  return h.digest('hex');
}

// DATA written straight to the socket, from gather buffers that go back to a pool once written: a
// buffer given back too early would be overwritten by a later chunk before it left.
test('gathered DATA written straight to the socket, its buffers reused, arrives intact both ways', async () => {
  // The default window, so a full 256 KiB chunk goes whole (the smallest window splits it).
  const { edge, agent, inbound, close } = await pair({ directData: 'unmasked', localWindow: MiB }, { directData: 'zero-mask', localWindow: MiB });
  edge.remoteWindow = agent.remoteWindow = MiB;
  const down = await tcpSource(24 * MiB);
  const up = await tcpSource(24 * MiB);
  try {
    const e = edge.open(head('bulk'));
    const sending = e.sink((async function* () {
      yield head('bulk');
      yield* readableData(down.socket);
    })());
    await waitFor(() => inbound.length === 1);
    const a = inbound[0].exchange;
    const answering = a.sink((async function* () {
      yield { kind: ChunkKind.HEADERS, status: 200, headers: [] } as HTTPChunk;
      yield* readableData(up.socket);
    })());
    const [atAgent, atEdge] = await within(Promise.all([hashOf(a), hashOf(e)]), 30_000, 'both transfers');
    await Promise.all([sending, answering]);
    assert.is(atAgent, down.sha256);
    assert.is(atEdge, up.sha256);
    assert.ok(gatherPool.freeBuffers > 0, 'gather buffers came back to the pool');
  } finally {
    down.close();
    up.close();
    await close();
  }
});

test('takeRest hands over a response folded whole at once and settles the exchange; a response still coming is left to the source', async () => {
  const { edge, agent, inbound, close } = await pair();
  edge.peerReadsFolded = true;
  agent.peerReadsFolded = true;
  try {
    const getHead = (id: string): HTTPChunk => ({ ...head(id), method: 'GET', end: true });
    // As the router does: the head that opened the exchange is its whole request (END folded in).
    const requestOf = (h: HTTPChunk) =>
      (async function* () {
        yield h;
      })();
    const wholeHead = getHead('w');
    const whole = edge.open(wholeHead);
    await waitFor(() => inbound.length === 1);
    // The request's END rode on its head: the agent takes it with nothing before it.
    assert.equal(inbound[0].exchange.takeRest?.(), []);
    void inbound[0].exchange.sink(
      (async function* () {
        yield { kind: ChunkKind.HEADERS, status: 200, headers: [], data: Buffer.from('hi'), end: true } as HTTPChunk;
      })(),
    );
    const sending = whole.sink(requestOf(wholeHead));
    const reader = whole.source[Symbol.asyncIterator]();
    const first = await within(reader.next(), 5000, 'the response head');
    assert.is(first.value?.status, 200);
    const rest = whole.takeRest?.();
    assert.is(rest?.length, 1);
    assert.is(Buffer.from(rest![0].data!).toString(), 'hi');
    await within(whole.closed, 5000, 'the exchange to settle');
    assert.is(whole.error, undefined);
    await sending;
    // A response whose body is still to come: nothing is taken, the source reads on.
    const partialHead = getHead('p');
    const partial = edge.open(partialHead);
    await waitFor(() => inbound.length === 2);
    const agentSide = inbound[1].exchange;
    let release!: () => void;
    const later = new Promise<void>((resolve) => (release = resolve));
    void agentSide.sink(
      (async function* () {
        yield { kind: ChunkKind.HEADERS, status: 200, headers: [] } as HTTPChunk;
        await later;
        yield dataChunk(Buffer.from('late'));
      })(),
    );
    void partial.sink(requestOf(partialHead));
    const r2 = partial.source[Symbol.asyncIterator]();
    assert.is((await within(r2.next(), 5000, 'the head')).value?.status, 200);
    assert.is(partial.takeRest?.(), undefined);
    release();
    const data = await within(r2.next(), 5000, 'the body');
    assert.is(Buffer.from(data.value!.data!).toString(), 'late');
    assert.ok((await within(r2.next(), 5000, 'the end')).done);
  } finally {
    await close();
  }
});

test('sendWhole sends a folded response in the same turn and finishes the write side; short of credit or once sink() runs it sends nothing', async () => {
  const { edge, agent, inbound, close } = await pair();
  edge.peerReadsFolded = true;
  agent.peerReadsFolded = true;
  const response = (): HTTPChunk => ({ kind: ChunkKind.HEADERS, status: 200, headers: [], data: Buffer.from('hi'), end: true });
  try {
    const request: HTTPChunk = { ...head('s'), method: 'GET', end: true };
    const exchange = edge.open(request);
    // The edge's GET: its head went out with END folded in, so the request side is done already.
    assert.is(exchange.sendWhole?.(request), true);
    await waitFor(() => inbound.length === 1);
    const served = inbound[0].exchange;
    assert.equal(served.takeRest?.(), []);
    assert.is(served.sendWhole?.(response()), true);
    await within(served.closed, 5000, 'the agent side to settle');
    const got: string[] = [];
    for await (const c of exchange.source) got.push(`${c.status}:${Buffer.from(c.data ?? []).toString()}`);
    assert.equal(got, ['200:', 'undefined:hi']);
    assert.is(exchange.error, undefined);
    // Credit too short for the folded chunk: nothing goes, sink() is the way.
    agent.remoteWindow = 8;
    const tight: HTTPChunk = { ...head('t'), method: 'GET', end: true };
    const second = edge.open(tight);
    await waitFor(() => inbound.length === 2);
    assert.is(inbound[1].exchange.sendWhole?.(response()), false);
    // Once sink() owns the write side, sendWhole never writes beside it.
    agent.remoteWindow = WINDOW;
    const third = edge.open({ ...head('u'), method: 'GET', end: true });
    await waitFor(() => inbound.length === 3);
    void inbound[2].exchange.sink((async function* () {})()).catch(() => undefined);
    assert.is(inbound[2].exchange.sendWhole?.(response()), false);
    second.abort(new Error('test over'));
    third.abort(new Error('test over'));
    // A head that went out without its END (a peer that does not read folded chunks): END is still owed.
    edge.peerReadsFolded = false;
    const unfolded: HTTPChunk = { ...head('v'), method: 'GET', end: true };
    const fourth = edge.open(unfolded);
    assert.is(fourth.sendWhole?.(unfolded), false);
    fourth.abort(new Error('test over'));
  } finally {
    await close();
  }
});

test.run();
