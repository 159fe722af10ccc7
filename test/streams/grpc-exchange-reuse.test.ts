import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import { ChunkKind, ResetCode, dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { AbortError } from '../../src/errors.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { GrpcExchangeChannel } from '../../src/streams/grpc-exchange-channel.js';
import { waitFor } from '../helpers/harness.js';
import { grpcLoopback, type GrpcLoopback } from '../helpers/grpc-loopback.js';

/**
 * Exchanges reuse ForwardHTTP streams: under any schedule of clean ends, client aborts and late
 * agent failures, every exchange sees exactly its own chunks, and a stream whose state is in doubt is
 * never reused. (Issue: a RESET sent after an exchange's END reached the next exchange on the stream.)
 */

type Ctx = GrpcLoopback;

const test = suite<Ctx>('streams/grpc-exchange-reuse');
const SEED = 20261127;

/** What happens to one exchange. */
type Fault =
  | 'none'
  // The public client leaves while the response is still coming.
  | 'edge-abort'
  // The origin answers in full, then the agent fails while the request body is still arriving.
  | 'agent-late-failure'
  // The origin breaks mid-response.
  | 'agent-reset';

interface Plan {
  fault: Fault;
  requestChunks: number;
  responseChunks: number;
  /** Macrotask turns the agent waits before answering (lets the request race ahead or not). */
  agentDelay: number;
}

test.before(async (ctx) => {
  Object.assign(ctx, await grpcLoopback());
});

test.after((ctx) => ctx.close());

const turns = (n: number): Promise<void> => (n <= 0 ? Promise.resolve() : new Promise((r) => setImmediate(() => void turns(n - 1).then(r))));
/** The byte every body chunk of exchange `id` carries, per direction: a stray chunk shows at once. */
const mark = (id: number, up: boolean): number => (id * 2 + (up ? 0 : 1)) & 0xff;

/** The agent's side of one stream, as GrpcConnection serves it: exchanges one after another. */
async function serveAgent(channel: GrpcExchangeChannel, plans: Map<string, Plan>, errors: string[]): Promise<void> {
  for (;;) {
    let head: HTTPChunk | null;
    try {
      head = await channel.next();
    } catch {
      channel.close(undefined);
      return;
    }
    if (head === null) return;
    const id = Number(head.exchangeId);
    const plan = plans.get(head.exchangeId!)!;
    const exchange = channel.begin(head.exchangeId!);
    void agentExchange(exchange, id, plan, errors);
    await exchange.closed;
    if (channel.status !== 'idle') return;
  }
}

async function agentExchange(exchange: ExchangeDuplex, id: number, plan: Plan, errors: string[]): Promise<void> {
  // Pulled by hand, as writeBody does: stopping leaves the iterator as it is (no return()).
  const source = exchange.source[Symbol.asyncIterator]();
  const reading = (async () => {
    for (;;) {
      const { value: chunk, done } = await source.next();
      if (done) return;
      if (chunk.kind === ChunkKind.DATA && chunk.data![0] !== mark(id, true)) errors.push(`agent: exchange ${id} got a chunk of another`);
      if (plan.fault === 'agent-late-failure') return; // stops reading: the origin answered early
    }
  })().catch(() => undefined);
  await turns(plan.agentDelay);
  async function* respond(): AsyncGenerator<HTTPChunk> {
    yield { kind: ChunkKind.HEADERS, status: 200, headers: [] };
    for (let i = 0; i < plan.responseChunks; i++) {
      if (plan.fault === 'agent-reset' && i === 1) throw new AbortError('origin broke');
      yield dataChunk(Buffer.alloc(1024, mark(id, false)));
      await turns(1);
    }
  }
  try {
    await exchange.sink(respond());
    if (plan.fault === 'agent-late-failure') exchange.abort(new AbortError('origin closed before the body'), ResetCode.ORIGIN_ERROR);
  } catch {
    // the exchange's own failure
  }
  await reading;
}

/** The edge's side of one exchange; resolves with whether the response arrived complete and clean. */
async function edgeExchange(exchange: ExchangeDuplex, id: number, plan: Plan, errors: string[]): Promise<boolean> {
  async function* request(): AsyncGenerator<HTTPChunk> {
    yield { kind: ChunkKind.HEADERS, exchangeId: String(id), method: 'POST', target: '/', headers: [] };
    for (let i = 0; i < plan.requestChunks; i++) {
      yield dataChunk(Buffer.alloc(1024, mark(id, true)));
      await turns(1);
    }
  }
  const upload = exchange.sink(request()).catch(() => undefined);
  let chunks = 0;
  let complete = false;
  try {
    for await (const chunk of exchange.source) {
      if (chunk.kind === ChunkKind.DATA) {
        if (chunk.data![0] !== mark(id, false)) errors.push(`edge: exchange ${id} got a chunk of another`);
        if (++chunks === 1 && plan.fault === 'edge-abort') exchange.abort(new AbortError('client left'), ResetCode.CANCEL);
      }
    }
    complete = true;
  } catch {
    // reset or aborted
  }
  await upload;
  if (complete && chunks !== plan.responseChunks) errors.push(`edge: exchange ${id} ended clean with ${chunks}/${plan.responseChunks} chunks`);
  return complete;
}

test('every exchange sees exactly its own chunks under random schedules of reuse, aborts and late failures', async (ctx) => {
  const fault = fc.constantFrom<Fault>('none', 'none', 'edge-abort', 'agent-late-failure', 'agent-reset');
  const plan = fc.record({
    fault,
    requestChunks: fc.integer({ min: 0, max: 6 }),
    responseChunks: fc.integer({ min: 2, max: 6 }),
    agentDelay: fc.integer({ min: 0, max: 4 }),
  });
  let nextId = 1;
  let nextStream = 1;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(plan, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }), async (lanes) => {
      const errors: string[] = [];
      const plans = new Map<string, Plan>();
      const open: GrpcExchangeChannel[] = [];
      /** A fresh stream pair; the edge end is what the lane reuses. */
      const newStream = async (): Promise<GrpcExchangeChannel> => {
        const tag = String(nextStream++);
        const md = new grpc.Metadata();
        md.set('x-pair', tag);
        const clientCall = ctx.client.forwardHTTP(md);
        const byTag = (): Duplex | undefined =>
          ctx.serverCalls.find((c) => String((c as unknown as grpc.ServerDuplexStream<HTTPChunk, HTTPChunk>).metadata.get('x-pair')[0]) === tag);
        await waitFor(() => byTag() !== undefined, 2000, 'server call');
        const edge = new GrpcExchangeChannel({ call: byTag()!, terminate: (c) => c.end() });
        const agent = new GrpcExchangeChannel({
          call: clientCall as unknown as Duplex,
          terminate: () => clientCall.cancel(),
          keepAfterLateFailure: true,
        });
        open.push(edge, agent);
        void serveAgent(agent, plans, errors);
        return edge;
      };
      // Lanes run concurrently, each on its own stream, reusing it while the edge sees it idle.
      await Promise.all(
        lanes.map(async (lane) => {
          let stream = await newStream();
          let reused = 0;
          for (const p of lane) {
            if (stream.status !== 'idle') stream = await newStream();
            else if (reused++ > 0) await turns(p.agentDelay % 2);
            const id = nextId++;
            plans.set(String(id), p);
            const clean = await edgeExchange(stream.begin(String(id)), id, p, errors);
            if (p.fault === 'none' && !clean) errors.push(`exchange ${id} without a fault did not complete`);
          }
        }),
      );
      for (const c of open) c.close(undefined);
      if (errors.length > 0) throw new Error(errors.join("; "));
    }),
    { seed: SEED, numRuns: 40 },
  );
});

test.run();
