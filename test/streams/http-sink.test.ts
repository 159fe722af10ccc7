import { get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { flushHeadUnlessBodyReady, writeResponse } from '../../src/streams/http-sink.js';
import { readBody, startOrigin, within, type Origin } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

interface Ctx {
  origin?: Origin;
  /** The response the test drives, handed over by the origin's handler. */
  responses: ServerResponse[];
  arrived?: Promise<void>;
}

const test = suite<Ctx>('streams/http-sink', { responses: [] });

test.before.each(async (ctx) => {
  ctx.responses = [];
  let arrived!: () => void;
  ctx.arrived = new Promise((resolve) => (arrived = resolve));
  ctx.origin = await startOrigin((_req, res) => {
    ctx.responses.push(res);
    arrived();
  });
});

test.after.each(async (ctx) => {
  for (const res of ctx.responses) res.destroy();
  await ctx.origin?.close();
});

/** Counts the writes `socket` hands to the kernel (corked writes leave as one). */
function countWrites(socket: Socket): () => number {
  let n = 0;
  const s = socket as Socket & { _writeGeneric(...args: unknown[]): unknown };
  const original = s._writeGeneric;
  s._writeGeneric = function (this: Socket, ...args: unknown[]) {
    n++;
    return original.apply(this, args);
  };
  return () => n;
}

function request(ctx: Ctx): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(`${ctx.origin!.url}/`, resolve).once('error', reject));
}

// Regression: the edge flushed a response head as soon as it had it, and the body that a transport
// delivered a moment later (grpc-js pushes each message after a promise) went in a second write: one
// more syscall for every small request.
test('a head whose body arrives later in the same turn leaves with it in one write', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  const writes = countWrites(res.socket!);
  res.writeHead(200, { 'content-length': '5' });
  flushHeadUnlessBodyReady(res, () => false);
  await Promise.resolve();
  res.end('hello');
  const msg = await within(response, 5000, 'the response');
  assert.is((await readBody(msg)).toString(), 'hello');
  assert.is(writes(), 1);
});

test('a head whose body is not there is sent on its own, before any body exists', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  flushHeadUnlessBodyReady(res, () => false);
  const msg = await within(response, 5000, 'the head of a response with no body yet');
  assert.is(msg.statusCode, 200);
  res.end('data: x\n\n');
  assert.is((await within(readBody(msg), 5000, 'the body')).toString(), 'data: x\n\n');
});

test('a head whose body is ready is not flushed: it goes with the body', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  const writes = countWrites(res.socket!);
  res.writeHead(200, { 'content-length': '2' });
  flushHeadUnlessBodyReady(res, () => true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(writes(), 0);
  res.end('ok');
  assert.is((await readBody(await within(response, 5000, 'the response'))).toString(), 'ok');
  assert.is(writes(), 1);
});

// Regression: with the head waiting for the end of its turn, a body that failed at once (DATA and RESET
// in one read) left it unsent, and the edge answered an error page where a started response should be
// cut (an HTTP/2 client saw a clean 502 instead of RST_STREAM).
test('a response whose body fails before its head went out still sends the head, for the caller to cut', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  async function* failing(): AsyncGenerator<HTTPChunk> {
    yield { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: '10' }] };
    throw new Error('reset by peer');
  }
  // The router destroys a started response in the same turn as the failure, as here.
  const failed = await writeResponse(res, failing(), () => false).then(
    () => false,
    () => (res.destroy(), true),
  );
  assert.ok(failed);
  const msg = await within(response, 5000, 'the head of the response');
  assert.is(msg.statusCode, 200);
  const cut = await within(readBody(msg).then(() => false, () => true), 5000, 'the body to end');
  assert.ok(cut, 'the client saw a complete body');
});

/** An async iterator over `list`, and a takeRest that hands over what `list` has left after its head when `whole`. */
function message(list: HTTPChunk[], whole: boolean) {
  let i = 0;
  const chunks: AsyncIterator<HTTPChunk> = {
    next: async () => (i < list.length ? { value: list[i++], done: false } : { value: undefined, done: true }),
  };
  const state = { taken: false };
  const takeRest = (accept?: (rest: readonly HTTPChunk[]) => boolean): HTTPChunk[] | undefined => {
    if (!whole) return undefined;
    const rest = list.slice(i);
    if (accept && !accept(rest)) return undefined;
    i = list.length;
    state.taken = true;
    return rest;
  };
  return { chunks, takeRest, state };
}

test('a response already here whole leaves in one write, its body counted, with the origin\'s framing', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  const writes = countWrites(res.socket!);
  const counter = { bytes: 0 };
  const { chunks, takeRest } = message(
    [
      { kind: ChunkKind.HEADERS, status: 201, headers: [{ name: 'Content-Length', value: '5' }] },
      { kind: ChunkKind.DATA, data: Buffer.from('hello') },
    ],
    true,
  );
  assert.is(await writeResponse(res, chunks, () => true, counter, takeRest), 201);
  const msg = await within(response, 5000, 'the response');
  assert.is(msg.statusCode, 201);
  assert.is(msg.headers['content-length'], '5');
  assert.is((await readBody(msg)).toString(), 'hello');
  assert.is(writes(), 1);
  assert.is(counter.bytes, 5);
});

test('a whole response whose body does not match its Content-Length is refused (ERR_PROTOCOL), never sent complete', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  const { chunks, takeRest, state } = message(
    [
      { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: '10' }] },
      { kind: ChunkKind.DATA, data: Buffer.from('short') },
    ],
    true,
  );
  const code = await writeResponse(res, chunks, () => true, undefined, takeRest).then(
    () => undefined,
    (err: { code?: string }) => (res.destroy(), err.code),
  );
  assert.is(code, 'ERR_PROTOCOL');
  // Left to the source, not taken: an exchange's reader then fails it, and the agent gets its RESET.
  assert.is(state.taken, false, 'a refused rest was taken');
  // Cut before or after its head: either way never a response that looks complete.
  const cut = await within(
    response.then(readBody).then(
      () => false,
      () => true,
    ),
    5000,
    'the response to end',
  );
  assert.ok(cut, 'the client saw a complete body');
});

test('a whole response with trailers goes the chunked way and keeps them', async (ctx) => {
  const response = request(ctx);
  await within(ctx.arrived!, 5000, 'the request');
  const res = ctx.responses[0];
  const { chunks, takeRest } = message(
    [
      { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Trailer', value: 'x-sum' }] },
      { kind: ChunkKind.DATA, data: Buffer.from('abc') },
      { kind: ChunkKind.TRAILERS, headers: [{ name: 'x-sum', value: '6' }] },
    ],
    true,
  );
  await writeResponse(res, chunks, () => true, undefined, takeRest);
  const msg = await within(response, 5000, 'the response');
  assert.is(msg.headers['transfer-encoding'], 'chunked');
  assert.is((await readBody(msg)).toString(), 'abc');
  assert.is(msg.trailers['x-sum'], '6');
});

test.run();
