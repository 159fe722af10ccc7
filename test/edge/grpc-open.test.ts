import * as assert from 'uvu/assert';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import type { EdgeMessage } from '../../src/codec/tunnel-codec.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { EXCHANGE_METADATA_KEY, SESSION_METADATA_KEY } from '../../src/streams/grpc-service.js';
import { send, startEdge, waitFor } from '../helpers/harness.js';
import { RawGrpcAgent, type RawCall } from '../helpers/raw-grpc-agent.js';
import { suite } from '../helpers/suite.js';

const test = suite<{ cleanup: Array<() => unknown> }>('edge/grpc-open');

test.before.each((ctx) => {
  ctx.cleanup = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
});

/**
 * A hand-driven gRPC agent that opens no idle stream of its own, so every exchange the edge starts
 * for it goes through an Open on its control stream.
 */
async function openOnlyAgent(ctx: { cleanup: Array<() => unknown> }, edge: Edge, name: string, foldedChunks: boolean) {
  const raw = new RawGrpcAgent(`127.0.0.1:${edge.grpcPort}`);
  ctx.cleanup.push(() => raw.close());
  const control = raw.register({ name, version: 'test', foldedChunks });
  const sessionId = (await control.first).registered!.sessionId;
  const opens: HTTPChunk[] = [];
  control.call.on('data', (msg: EdgeMessage) => msg.open && opens.push(msg.open.headers));
  return { raw, control, sessionId, opens };
}

/** The stream an agent opens for `head` (an Open's), and every chunk the edge sends on it. */
function forwardFor(raw: RawGrpcAgent, sessionId: string, head: HTTPChunk): RawCall<HTTPChunk> & { received: HTTPChunk[] } {
  const fwd = raw.forward({ [SESSION_METADATA_KEY]: sessionId, [EXCHANGE_METADATA_KEY]: head.exchangeId ?? '' });
  const received: HTTPChunk[] = [];
  fwd.call.on('data', (chunk: HTTPChunk) => received.push(chunk));
  return { ...fwd, received };
}

/** A fresh edge, an Open-only agent for `name`, and one GET to it whose Open has arrived. */
async function openedGet(ctx: { cleanup: Array<() => unknown> }, name: string, foldedChunks: boolean, path: string) {
  const edge = await startEdge();
  ctx.cleanup.push(() => edge.close());
  const agent = await openOnlyAgent(ctx, edge, name, foldedChunks);
  const response = send(edge, name, path);
  await waitFor(() => agent.opens.length === 1, 5000, 'the Open');
  return { edge, ...agent, response };
}

/** Answers exchange `seq` of `fwd` with a complete 200 "ok", folded into one message. */
function answerOk(fwd: RawCall<HTTPChunk>, seq: number): void {
  fwd.call.write({ kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'content-length', value: '2' }], data: Buffer.from('ok'), end: true, seq });
}

test("to an agent that reads folded chunks, a GET's Open carries its END, and no END follows on the stream", async (ctx) => {
  const { edge, raw, sessionId, opens, response: first } = await openedGet(ctx, 'opener', true, '/first');
  // One message: the agent can serve it at once as a request without a body (undici's pool in jetty's agent).
  assert.is(opens[0].end, true);
  const fwd = forwardFor(raw, sessionId, opens[0]);
  answerOk(fwd, 1);
  assert.is((await first).body.toString(), 'ok');
  // The next GET takes the same stream, now idle: whatever the edge sent for exchange 1 came before its head.
  const second = send(edge, 'opener', '/second');
  await waitFor(() => fwd.received.some((c) => c.seq === 2), 5000, 'the second exchange on the stream');
  answerOk(fwd, 2);
  assert.is((await second).body.toString(), 'ok');
  assert.equal(
    fwd.received.map((c) => [c.seq, c.kind, c.end === true]),
    [[2, ChunkKind.HEADERS, true]],
    'nothing for exchange 1; exchange 2 as one folded HEADERS',
  );
});

test('to an agent that does not read folded chunks, an Open carries no END and it follows on the stream', async (ctx) => {
  const { raw, sessionId, opens, response } = await openedGet(ctx, 'plain', false, '/');
  assert.is.not(opens[0].end, true);
  const fwd = forwardFor(raw, sessionId, opens[0]);
  await waitFor(() => fwd.received.length === 1, 5000, 'the END on the stream');
  assert.equal(fwd.received.map((c) => [c.seq, c.kind]), [[1, ChunkKind.END]]);
  fwd.call.write({ kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'content-length', value: '2' }], seq: 1 });
  fwd.call.write({ kind: ChunkKind.DATA, data: Buffer.from('ok'), seq: 1 });
  fwd.call.write({ kind: ChunkKind.END, seq: 1 });
  assert.is((await response).body.toString(), 'ok');
});

test.run();
