// Folded chunks (proto/tunnel.proto `end`) through a real gRPC call: what an exchange's sink sends for a
// producer's folded chunks, to a peer that reads them and to one that does not, and what the other
// side's source reads (the same chunks either way).
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { GrpcExchangeChannel } from '../../src/streams/grpc-exchange-channel.js';
import { GRPC_STREAM_WINDOW_BYTES } from '../../src/streams/grpc-service.js';
import { waitFor, within } from '../helpers/harness.js';
import { grpcLoopback, type GrpcLoopback } from '../helpers/grpc-loopback.js';
import { suite } from '../helpers/suite.js';

type Ctx = GrpcLoopback;

const test = suite<Ctx>('streams/folded-chunks');

test.before(async (ctx) => {
  Object.assign(ctx, await grpcLoopback({ 'grpc-node.flow_control_window': GRPC_STREAM_WINDOW_BYTES }));
});

test.after((ctx) => ctx.close());

/** Counts the messages written on a grpc-js call. */
function countWrites(call: Duplex): () => number {
  let n = 0;
  const write = call.write.bind(call);
  call.write = ((...args: Parameters<Duplex['write']>) => {
    n++;
    return write(...args);
  }) as Duplex['write'];
  return () => n;
}

/** A connected pair over one ForwardHTTP call: `edge` wraps the server call, `agent` the client call. */
async function pair(ctx: Ctx, peerReadsFolded: boolean) {
  const before = ctx.serverCalls.length;
  const clientCall = ctx.client.forwardHTTP(new grpc.Metadata()) as unknown as Duplex;
  await waitFor(() => ctx.serverCalls.length > before, 2000, 'server call');
  const serverCall = ctx.serverCalls[before];
  const written = { edge: countWrites(serverCall), agent: countWrites(clientCall) };
  const edge = new GrpcExchangeChannel({ call: serverCall, terminate: (c) => c.end(), peerReadsFolded });
  const agent = new GrpcExchangeChannel({ call: clientCall, terminate: () => (clientCall as unknown as grpc.ClientDuplexStream<unknown, unknown>).cancel(), peerReadsFolded });
  return { edge, agent, written };
}

async function* chunks(...list: HTTPChunk[]): AsyncGenerator<HTTPChunk> {
  yield* list;
}

/** One exchange: a request whose body is folded with its END, a response folded whole. */
async function exchange(ctx: Ctx, peerReadsFolded: boolean) {
  const { edge, agent, written } = await pair(ctx, peerReadsFolded);
  const out = edge.begin('x');
  const sending = out.sink(chunks({ kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'POST', target: '/', headers: [] }, { ...dataChunk(Buffer.from('ping')), end: true }));
  const head = await within(agent.next(), 5000, 'the request head');
  assert.is(head?.method, 'POST');
  const inbound = agent.begin('x');
  const request: string[] = [];
  for await (const c of inbound.source) request.push(`${ChunkKind[c.kind]}:${Buffer.from(c.data ?? []).toString()}`);
  await inbound.sink(chunks({ kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: '4' }], data: Buffer.from('pong'), end: true }));
  await within(sending, 5000, 'the request to be sent');
  const it = out.source[Symbol.asyncIterator]();
  const responseHead = (await it.next()).value as HTTPChunk;
  // The DATA folded into the head is there already: a public response head then leaves with its body.
  const bufferedAfterHead = out.buffered;
  const response: string[] = [`${ChunkKind[responseHead.kind]}:${responseHead.status}`];
  for (let r = await it.next(); !r.done; r = await it.next()) response.push(`${ChunkKind[r.value.kind]}:${Buffer.from(r.value.data ?? []).toString()}`);
  await within(Promise.all([out.closed, inbound.closed]), 5000, 'both sides to finish');
  assert.is(out.error, undefined);
  assert.is(inbound.error, undefined);
  return { request, response, bufferedAfterHead, messages: { edge: written.edge(), agent: written.agent() } };
}

test('to a peer that reads folded chunks, a complete response is one message and END rides on the last DATA', async (ctx) => {
  const r = await exchange(ctx, true);
  assert.equal(r.request, ['DATA:ping']);
  assert.equal(r.response, ['HEADERS:200', 'DATA:pong']);
  assert.ok(r.bufferedAfterHead);
  assert.equal(r.messages, { edge: 2, agent: 1 });
});

test('to a peer that does not, the same chunks go unfolded (HEADERS, DATA, END) and read the same', async (ctx) => {
  const r = await exchange(ctx, false);
  assert.equal(r.request, ['DATA:ping']);
  assert.equal(r.response, ['HEADERS:200', 'DATA:pong']);
  assert.equal(r.messages, { edge: 3, agent: 3 });
});

for (const folded of [true, false]) {
  test(`a request without a body is ${folded ? 'one message (HEADERS{end})' : 'HEADERS then END'} to a peer that ${folded ? 'reads' : 'does not read'} folded chunks`, async (ctx) => {
    const { edge, agent, written } = await pair(ctx, folded);
    const out = edge.begin('x');
    const sending = out.sink(chunks({ kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], end: true }));
    const head = await within(agent.next(), 5000, 'the request head');
    const inbound = agent.begin('x', { headEnded: head?.end === true });
    const rest: HTTPChunk[] = [];
    for await (const c of inbound.source) rest.push(c);
    assert.equal(rest, []);
    assert.is(head?.end === true, folded);
    await inbound.sink(chunks({ kind: ChunkKind.HEADERS, status: 204, headers: [], end: true }));
    await within(sending, 5000, 'the request to be sent');
    for await (const c of out.source) rest.push(c);
    await within(Promise.all([out.closed, inbound.closed]), 5000, 'both sides to finish');
    assert.is(out.error, undefined);
    assert.is(written.edge(), folded ? 1 : 2);
  });
}

test('a producer that yields after its chunk marked last fails the exchange with RESET, not a second END', async (ctx) => {
  const { edge, agent } = await pair(ctx, true);
  const out = edge.begin('x');
  const sending = out.sink(chunks({ kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'POST', target: '/', headers: [] }, { ...dataChunk(Buffer.from('a')), end: true }, dataChunk(Buffer.from('b'))));
  const failed = sending.then(() => false, () => true);
  await within(agent.next(), 5000, 'the request head');
  const inbound = agent.begin('x');
  assert.ok(await within(failed, 5000, 'the sink to fail'));
  assert.is((out.error as { code?: string } | undefined)?.code, 'ERR_PROTOCOL');
  const read: string[] = [];
  await within(
    (async () => {
      try {
        for await (const c of inbound.source) read.push(Buffer.from(c.data ?? []).toString());
      } catch {
        read.push('reset');
      }
    })(),
    5000,
    'the peer to see the exchange end',
  );
  // The peer read the folded DATA and its END: the exchange completed there before the RESET came.
  assert.equal(read, ['a']);
});

test.run();
