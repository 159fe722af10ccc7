import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { AbortError, ProtocolError } from '../../src/errors.js';
import { CALL_HIGH_WATER_MARK_CHUNKS, EXCHANGE_BUFFER_BOUND_BYTES, GrpcExchangeChannel } from '../../src/streams/grpc-exchange-channel.js';
import { GRPC_STREAM_WINDOW_BYTES } from '../../src/streams/grpc-service.js';
import { waitFor } from '../helpers/harness.js';
import { grpcLoopback, type GrpcLoopback } from '../helpers/grpc-loopback.js';

type Ctx = GrpcLoopback;

const test = suite<Ctx>('streams/grpc-exchange-channel');
const SEED = 20261126;

test.before(async (ctx) => {
  Object.assign(ctx, await grpcLoopback({ 'grpc-node.flow_control_window': GRPC_STREAM_WINDOW_BYTES }));
});

test.after((ctx) => ctx.close());

/** A connected pair: `sender` wraps the server call, `receiver` the client call. */
async function pair(ctx: Ctx, peerReadsFolded = false) {
  const before = ctx.serverCalls.length;
  const clientCall = ctx.client.forwardHTTP(new grpc.Metadata());
  await waitFor(() => ctx.serverCalls.length > before, 2000, 'server call');
  const serverCall = ctx.serverCalls[before];
  const sender = new GrpcExchangeChannel({ call: serverCall, terminate: (c) => c.end(), peerReadsFolded });
  const receiver = new GrpcExchangeChannel({ call: clientCall as unknown as Duplex, terminate: () => clientCall.cancel(), peerReadsFolded });
  return { sender, receiver, clientCall, serverCall };
}

test('bytes in = bytes out under random pause schedules, and unconsumed bytes stay within the bound', async (ctx) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 256 * 1024 }), { minLength: 1, maxLength: 120 }),
      fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 40 }),
      async (sizes, pauses) => {
        const { sender, receiver } = await pair(ctx);
        const out = sender.begin('x');
        let sent = 0;
        let received = 0;
        let maxAhead = 0;
        async function* produce(): AsyncGenerator<HTTPChunk> {
          yield { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'POST', target: '/', headers: [] };
          let seed = 0;
          for (const size of sizes) {
            const data = Buffer.alloc(size, seed++ & 0xff);
            sent += size;
            maxAhead = Math.max(maxAhead, sent - received);
            yield dataChunk(data);
          }
        }
        const sending = out.sink(produce());
        const head = await receiver.next();
        assert.is(head?.kind, ChunkKind.HEADERS);
        const inbound = receiver.begin('x');
        let expectByte = 0;
        let reads = 0;
        let sizeIndex = 0;
        let offsetInChunk = 0;
        for await (const chunk of inbound.source) {
          const data = chunk.data!;
          // Byte values tell which chunk a byte came from: checks order and content, not just counts.
          for (let i = 0; i < data.length; i += 4096) {
            assert.is(data[i], expectByte & 0xff);
          }
          received += data.length;
          offsetInChunk += data.length;
          while (sizeIndex < sizes.length && offsetInChunk >= sizes[sizeIndex]) {
            offsetInChunk -= sizes[sizeIndex++];
            expectByte++;
          }
          const pause = pauses[reads++ % pauses.length];
          if (pause > 10) await delay(pause);
        }
        await sending;
        assert.is(received, sent);
        assert.ok(maxAhead <= EXCHANGE_BUFFER_BOUND_BYTES, `sender got ${maxAhead} bytes ahead`);
        sender.close(undefined);
        receiver.close(undefined);
      },
    ),
    { seed: SEED, numRuns: 8 },
  );
});

test('both calls queue at most CALL_HIGH_WATER_MARK_CHUNKS messages each way (grpc-js builds them with 16)', async (ctx) => {
  const { sender, receiver, clientCall, serverCall } = await pair(ctx);
  for (const call of [clientCall as unknown as Duplex, serverCall]) {
    assert.is(call.readableHighWaterMark, CALL_HIGH_WATER_MARK_CHUNKS);
    assert.is(call.writableHighWaterMark, CALL_HIGH_WATER_MARK_CHUNKS);
  }
  // The bound is live, not just reported: the third message written while none completes asks to wait.
  const out = serverCall as Duplex;
  const results = [out.write({ kind: ChunkKind.DATA, data: Buffer.alloc(1), seq: 1 }), out.write({ kind: ChunkKind.DATA, data: Buffer.alloc(1), seq: 1 })];
  assert.equal(results, [true, false]);
  sender.close(undefined);
  receiver.close(undefined);
});

test('a stalled reader holds the sender to the bound', async (ctx) => {
  const { sender, receiver } = await pair(ctx);
  const out = sender.begin('s');
  let sent = 0;
  const block = Buffer.alloc(64 * 1024);
  async function* endless(): AsyncGenerator<HTTPChunk> {
    yield { kind: ChunkKind.HEADERS, exchangeId: 's', method: 'GET', target: '/', headers: [] };
    for (;;) {
      sent += block.length;
      yield dataChunk(block);
    }
  }
  const sending = out.sink(endless()).catch((err: Error) => err);
  await receiver.next();
  receiver.begin('s');
  let last = -1;
  await waitFor(() => {
    const stable = sent === last;
    last = sent;
    return stable;
  }, 5000, 'sender to stall');
  assert.ok(sent <= EXCHANGE_BUFFER_BOUND_BYTES, `sent ${sent} bytes to a reader that reads nothing`);
  out.abort(new AbortError('test over'));
  assert.ok((await sending) instanceof Error);
  receiver.close(undefined);
});

test('abort at any step releases the call listeners and fails the peer', async (ctx) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 5 }), async (abortAfter) => {
      const { sender, receiver, clientCall } = await pair(ctx);
      const baseline = clientCall.listenerCount('readable');
      const out = sender.begin('a');
      const sending = out.sink(
        (async function* () {
          yield { kind: ChunkKind.HEADERS, exchangeId: 'a', method: 'GET', target: '/', headers: [] } as HTTPChunk;
          for (let i = 0; ; i++) yield dataChunk(Buffer.alloc(1024, i));
        })(),
      ).catch(() => undefined);
      await receiver.next();
      const inbound = receiver.begin('a');
      let n = 0;
      let failure: unknown;
      try {
        for await (const _ of inbound.source) {
          if (n++ === abortAfter) inbound.abort(new AbortError('stop'));
        }
      } catch (err) {
        failure = err;
      }
      assert.ok(failure, 'reader ends with an error');
      await inbound.closed;
      await sending;
      await waitFor(() => sender.status === 'closed', 2000, 'peer to see the abort');
      assert.is(receiver.status, 'closed');
      assert.ok(clientCall.listenerCount('readable') < baseline);
    }),
    { seed: SEED, numRuns: 6 },
  );
});

test('a clean exchange leaves both ends idle and the stream carries the next one', async (ctx) => {
  const { sender, receiver } = await pair(ctx);
  for (const id of ['one', 'two']) {
    const out = sender.begin(id);
    const request = out.sink(
      (async function* () {
        yield { kind: ChunkKind.HEADERS, exchangeId: id, method: 'GET', target: '/', headers: [] } as HTTPChunk;
      })(),
    );
    const head = await receiver.next();
    assert.is(head?.exchangeId, id);
    const inbound = receiver.begin(id);
    for await (const _ of inbound.source) assert.unreachable('no request body');
    await inbound.sink(
      (async function* () {
        yield { kind: ChunkKind.HEADERS, status: 200, headers: [] } as HTTPChunk;
        yield dataChunk(Buffer.from(id));
      })(),
    );
    await request;
    const got: string[] = [];
    for await (const c of out.source) if (c.kind === ChunkKind.DATA) got.push(Buffer.from(c.data!).toString());
    assert.equal(got, [id]);
    assert.is(sender.status, 'idle');
    assert.is(receiver.status, 'idle');
  }
  sender.close(undefined);
  receiver.close(undefined);
});

test('sendWhole sends a small complete response as one message in the same turn; with the call over its high-water mark it sends nothing', async (ctx) => {
  const { sender, receiver, clientCall } = await pair(ctx, true);
  const out = sender.begin('w');
  const request = out.sink(
    (async function* () {
      yield { kind: ChunkKind.HEADERS, exchangeId: 'w', method: 'GET', target: '/', headers: [], end: true } as HTTPChunk;
    })(),
  );
  const head = await receiver.next();
  assert.is(head?.exchangeId, 'w');
  const inbound = receiver.begin('w', { headEnded: true });
  assert.equal(inbound.takeRest?.(), []);
  const whole: HTTPChunk = { kind: ChunkKind.HEADERS, status: 200, headers: [], data: Buffer.from('whole'), end: true };
  assert.is(inbound.sendWhole?.(whole), true);
  await inbound.closed;
  await request;
  const got: string[] = [];
  for await (const c of out.source) got.push(`${c.kind}:${Buffer.from(c.data ?? []).toString()}`);
  assert.equal(got, [`${ChunkKind.HEADERS}:`, `${ChunkKind.DATA}:whole`]);
  assert.is(out.error, undefined);
  assert.is(receiver.status, 'idle');
  // At the high-water mark (a writer would wait): nothing is written, sink() is the way.
  const next = sender.begin('x');
  void next.sink((async function* () {
    yield { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], end: true } as HTTPChunk;
  })());
  await receiver.next();
  const second = receiver.begin('x', { headEnded: true });
  let writes = 0;
  const write = clientCall.write;
  Object.defineProperty(clientCall, 'write', { value: (...args: Parameters<typeof write>) => (writes++, write.apply(clientCall, args)), configurable: true });
  Object.defineProperty(clientCall, 'writableLength', { value: CALL_HIGH_WATER_MARK_CHUNKS, configurable: true });
  assert.is(second.sendWhole?.(whole), false);
  assert.is(writes, 0, 'nothing written');
  Reflect.deleteProperty(clientCall, 'writableLength');
  assert.is(second.sendWhole?.({ ...whole }), true, 'below the mark again: sent');
  assert.is(writes, 1);
  Reflect.deleteProperty(clientCall, 'write');
  second.abort(new Error('test over'));
  next.abort(new Error('test over'));
  sender.close(undefined);
  receiver.close(undefined);
});

// The edge never read an idle ForwardHTTP stream: whatever an agent wrote on one stayed in the
// call's buffer and the stream's HTTP/2 window (40 idle streams of one agent held 340 MiB of edge memory).
test('the edge side reads its idle streams: late chunks are dropped, a chunk of a later exchange closes the stream', async (ctx) => {
  const before = ctx.serverCalls.length;
  const clientCall = ctx.client.forwardHTTP(new grpc.Metadata());
  clientCall.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => clientCall.on('status', resolve));
  await waitFor(() => ctx.serverCalls.length > before, 2000, 'server call');
  let closedWith: Error | undefined | null = null;
  const edge = new GrpcExchangeChannel({ call: ctx.serverCalls[before], terminate: (c) => c.end(), readWhileIdle: true, onClose: (_ch, err) => (closedWith = err) });
  edge.watchIdle();
  const receiver = new GrpcExchangeChannel({ call: clientCall as unknown as Duplex, terminate: () => clientCall.cancel() });

  // One clean exchange, so the stream is idle again at exchange 1.
  const out = edge.begin('one');
  const request = out.sink(
    (async function* () {
      yield { kind: ChunkKind.HEADERS, exchangeId: 'one', method: 'GET', target: '/', headers: [] } as HTTPChunk;
    })(),
  );
  await receiver.next();
  const inbound = receiver.begin('one');
  for await (const _ of inbound.source) assert.unreachable('no request body');
  await inbound.sink(
    (async function* () {
      yield { kind: ChunkKind.HEADERS, status: 204, headers: [] } as HTTPChunk;
    })(),
  );
  await request;
  for await (const _ of out.source) void _;
  assert.is(edge.status, 'idle');

  // A late RESET of exchange 1 is read and dropped; DATA of exchange 2, which the edge never started, is not.
  clientCall.write({ kind: ChunkKind.RESET, code: 1, reason: '', seq: 1 });
  clientCall.write({ kind: ChunkKind.DATA, data: Buffer.alloc(1024), seq: 2 });
  await waitFor(() => edge.status === 'closed', 2000, 'the idle stream to close');
  assert.instance(closedWith, ProtocolError);
  assert.is((await status).code, grpc.status.OK);
  receiver.close(undefined);
});

test('a fresh idle stream on the edge side takes no chunk before its first exchange', async (ctx) => {
  const before = ctx.serverCalls.length;
  const clientCall = ctx.client.forwardHTTP(new grpc.Metadata());
  clientCall.on('error', () => undefined);
  await waitFor(() => ctx.serverCalls.length > before, 2000, 'server call');
  let closedWith: Error | undefined | null = null;
  const edge = new GrpcExchangeChannel({ call: ctx.serverCalls[before], terminate: (c) => c.end(), readWhileIdle: true, onClose: (_ch, err) => (closedWith = err) });
  edge.watchIdle();
  clientCall.write({ kind: ChunkKind.END, seq: 0 });
  clientCall.write({ kind: ChunkKind.HEADERS, status: 200, headers: [], seq: 1 });
  await waitFor(() => edge.status === 'closed', 2000, 'the idle stream to close');
  assert.instance(closedWith, ProtocolError);
  clientCall.cancel();
});

test.run();
