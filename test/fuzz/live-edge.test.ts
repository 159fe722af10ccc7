import { connect as h2connect, type ClientHttp2Stream } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { MemoryRegistry } from '../../src/actors/registry.js';
import type { Agent } from '../../src/agent/agent.js';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { decodeChunk, decodeEdgeMessage, encodeAgentMessage, encodeChunk, MAX_FRAME_BYTES } from '../../src/codec/tunnel-codec.js';
import { encodeWsFrameJson, encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO, type WsCodecName, type WsFrame } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { SESSION_METADATA_KEY, TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';
import { agentMessageArb, chunkArb, wsFrameArb } from '../helpers/frame-arbitraries.js';
import { FUZZ_SEED, jsonFrameInputArb, jsonMutationArb, mutate, mutateJson, mutationsArb, protobufInputArb } from '../helpers/fuzz.js';
import { send, startAgent, startEdge, startOrigin, waitFor, within, type Origin } from '../helpers/harness.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { suite } from '../helpers/suite.js';

/**
 * 1,000 mutated frames sent to a live in-process edge over real connections — WebSocket with both
 * subprotocols, gRPC Register and ForwardHTTP through a raw grpc-js client (identity serializers, so
 * any bytes go as a message), and HTTP/2 frames whose gRPC length prefix lies — before the Hello,
 * after it, and inside an exchange a public client is waiting on. Each frame has a session of its
 * own. Throughout: every frame closes at most its own session (a WebSocket session that survives
 * still answers), public requests to a fuzzed tunnel end, the two healthy tunnels (one per transport)
 * serve every check and never reconnect, no uncaught exception or unhandled rejection, no session
 * handler fault; afterwards no session, socket or exchange is left and the heap is back near its
 * baseline.
 */
const test = suite<Ctx>('fuzz/live-edge');

const FRAMES = 1000;
const CONCURRENCY = 8;
const HEALTH_EVERY = 50;
/** Heap growth allowed after everything closed, beyond the baseline taken after a warm-up. */
const HEAP_SLACK_BYTES = 8 * 1024 * 1024;
/** A stream id no exchange uses (odd, far above the edge's next one): the edge answers a chunk on it with RESET. */
const PROBE_STREAM = 2_000_000_001;

const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function heapBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

// ---- the scenarios: one mutated frame (or sequence) each ----

type Stage = 'pre-hello' | 'registered' | 'exchange';
type Scenario =
  | { kind: 'ws'; protocol: WsCodecName; stage: Exclude<Stage, 'exchange'>; frame: Buffer; wrongType: boolean }
  | { kind: 'ws'; protocol: WsCodecName; stage: 'exchange'; frames: Buffer[] }
  | { kind: 'grpc-register'; stage: Exclude<Stage, 'exchange'>; message: Buffer }
  | { kind: 'grpc-forward'; stage: 'idle' | 'exchange'; messages: Buffer[] }
  | { kind: 'grpc-prefix'; afterHello: boolean; claimed: number; body: Buffer };

const RESPONSE: HTTPChunk[] = [
  { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'content-type', value: 'text/plain' }] },
  { kind: ChunkKind.DATA, data: Buffer.from('fuzzed') },
  { kind: ChunkKind.END },
];

type Reorder = { op: 'swap'; a: number; b: number } | { op: 'double'; a: number } | { op: 'drop'; a: number } | { op: 'none' };
const reorderArb: fc.Arbitrary<Reorder> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ op: 'none' as const }) },
  fc.record({ op: fc.constant('swap' as const), a: fc.nat(2), b: fc.nat(2) }),
  fc.record({ op: fc.constant('double' as const), a: fc.nat(2) }),
  fc.record({ op: fc.constant('drop' as const), a: fc.nat(2) }),
);

function reorder<T>(items: T[], r: Reorder): T[] {
  const out = [...items];
  if (r.op === 'swap') [out[r.a], out[r.b]] = [out[r.b], out[r.a]];
  else if (r.op === 'double') out.splice(r.a, 0, out[r.a]);
  else if (r.op === 'drop') out.splice(r.a, 1);
  return out;
}

/** A valid response on `encode`'s terms with one frame damaged by `damage` and the chunk kinds maybe reordered. */
function damagedResponse(encode: (c: HTTPChunk) => Buffer, damage: (b: Buffer) => Buffer): fc.Arbitrary<Buffer[]> {
  return fc.tuple(fc.nat(2), reorderArb).map(([which, r]) => reorder(RESPONSE.map((c, i) => (i === which ? damage(encode(c)) : encode(c))), r));
}

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const wsEncode = (protocol: WsCodecName, stream: number) => (chunk: HTTPChunk) =>
  Buffer.from(protocol === WS_PROTOCOL_PROTO ? encodeWsFrameProto({ stream, chunk }) : encodeWsFrameJson({ stream, chunk }));

function wsScenarios(protocol: WsCodecName): fc.Arbitrary<Scenario> {
  const single =
    protocol === WS_PROTOCOL_PROTO
      ? protobufInputArb(wsFrameArb.map(encodeWsFrameProto))
      : jsonFrameInputArb(wsFrameArb.filter((f) => !('edge' in f && f.edge.open)).map(encodeWsFrameJson));
  const damage =
    protocol === WS_PROTOCOL_PROTO
      ? mutationsArb.map((ms) => (b: Buffer) => asBuffer(ms.reduce(mutate, new Uint8Array(b))))
      : fc.array(jsonMutationArb, { minLength: 1, maxLength: 3 }).map((ms) => (b: Buffer) => Buffer.from(mutateJson(b.toString(), ms)));
  return fc.oneof(
    fc.record({ kind: fc.constant('ws' as const), protocol: fc.constant(protocol), stage: fc.constantFrom('pre-hello' as const, 'registered' as const), frame: single, wrongType: fc.nat({ max: 19 }).map((n) => n === 0) }),
    // The first exchange of a fresh session is stream 1.
    damage.chain((d) => damagedResponse(wsEncode(protocol, 1), d)).map((frames) => ({ kind: 'ws' as const, protocol, stage: 'exchange' as const, frames })),
  );
}

const grpcScenarios: fc.Arbitrary<Scenario> = fc.oneof(
  fc.record({ kind: fc.constant('grpc-register' as const), stage: fc.constantFrom('pre-hello' as const, 'registered' as const), message: protobufInputArb(agentMessageArb.map(encodeAgentMessage)) }),
  fc.record({ kind: fc.constant('grpc-forward' as const), stage: fc.constant('idle' as const), messages: protobufInputArb(chunkArb.map(encodeChunk)).map((b) => [b]) }),
  mutationsArb
    .chain((ms) => damagedResponse((c) => asBuffer(encodeChunk({ ...c, seq: 1 })), (b) => asBuffer(ms.reduce(mutate, new Uint8Array(b)))))
    .map((messages) => ({ kind: 'grpc-forward' as const, stage: 'exchange' as const, messages })),
);

const prefixScenarios: fc.Arbitrary<Scenario> = fc.record({
  kind: fc.constant('grpc-prefix' as const),
  afterHello: fc.boolean(),
  claimed: fc.constantFrom(MAX_FRAME_BYTES + 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff),
  body: fc.uint8Array({ maxLength: 64 }).map(asBuffer),
});

function scenarios(): Scenario[] {
  const pick = (arb: fc.Arbitrary<Scenario>, n: number, salt: number) => fc.sample(arb, { seed: FUZZ_SEED + salt, numRuns: n });
  const all = [
    ...pick(wsScenarios(WS_PROTOCOL_PROTO), 300, 1),
    ...pick(wsScenarios(WS_PROTOCOL_JSON), 250, 2),
    ...pick(grpcScenarios, 400, 3),
    ...pick(prefixScenarios, 50, 4),
  ];
  // Interleave the kinds, deterministically.
  return fc.sample(fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }), { seed: FUZZ_SEED, numRuns: 1 })[0];
}

// ---- driving one scenario ----

interface Ctx {
  edge: Edge;
  origin: Origin;
  registry: MemoryRegistry;
  good: Agent[];
  reconnects: number;
}

interface Outcome {
  /** The session ended (closed by the edge, or refused). */
  closed: boolean;
  /** A public request was sent: its status, or 0 when the connection was cut. */
  publicStatus?: number;
}

/** A public request that must end (any status, or a cut connection) within the deadline. */
async function publicRequest(ctx: Ctx, name: string): Promise<number> {
  return within(
    send(ctx.edge, name, '/').then(
      ({ res }) => res.statusCode ?? 0,
      () => 0,
    ),
    10_000,
    `the public request to ${name}`,
  );
}

async function runWs(ctx: Ctx, s: Extract<Scenario, { kind: 'ws' }>, name: string): Promise<Outcome> {
  const raw = await RawWsAgent.open(ctx.edge, { protocol: s.protocol });
  const codec = WS_CODECS[s.protocol];
  const sendRaw = (b: Buffer, binary = codec.binary) => raw.ws.readyState === WebSocket.OPEN && raw.ws.send(b, { binary });
  let status: Promise<number> | undefined;
  try {
    if (s.stage !== 'pre-hello') {
      raw.send(RawWsAgent.hello(name));
      await raw.next((f) => 'edge' in f && !!f.edge.registered);
    }
    if (s.stage === 'exchange') {
      status = publicRequest(ctx, name);
      await raw.nextExchange();
      for (const f of s.frames) sendRaw(f);
    } else sendRaw(s.frame, s.wrongType ? !codec.binary : codec.binary);
    // The edge answers a chunk on an unknown stream with RESET: a session that is still open must.
    const probe: WsFrame = { stream: PROBE_STREAM, chunk: { kind: ChunkKind.DATA, data: Buffer.from('?') } };
    if (raw.ws.readyState === WebSocket.OPEN) raw.send(probe);
    await within(
      Promise.race([raw.closed, raw.next((f) => f.stream === PROBE_STREAM && 'chunk' in f && f.chunk.kind === ChunkKind.RESET, 5000).catch(() => raw.closed)]),
      5000,
      'the probe answer or the close',
    );
    const closed = raw.ws.readyState !== WebSocket.OPEN;
    await raw.close();
    return { closed, publicStatus: status && (await status) };
  } finally {
    await raw.close();
    await status?.catch(() => 0);
  }
}

type RawCall = grpc.ClientDuplexStream<Buffer, Buffer>;
const identity = (b: Buffer): Buffer => b;
const rawMethod = (path: string) => ({ path, requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
const RawClient = grpc.makeGenericClientConstructor(
  { register: rawMethod(TUNNEL_AGENT_SERVICE.register.path), forwardHTTP: rawMethod(TUNNEL_AGENT_SERVICE.forwardHTTP.path) },
  'TunnelAgent',
);
type RawGrpcClient = grpc.Client & { register(md?: grpc.Metadata): RawCall; forwardHTTP(md?: grpc.Metadata): RawCall };

/** Everything a call answers, and its status once it ends. */
function watch(call: RawCall): { messages: Buffer[]; status: Promise<grpc.StatusObject>; next: () => Promise<Buffer> } {
  const messages: Buffer[] = [];
  let wake: (() => void) | undefined;
  call.on('data', (m: Buffer) => {
    messages.push(m);
    wake?.();
  });
  call.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  let read = 0;
  const next = async (): Promise<Buffer> => {
    while (read >= messages.length) {
      const ended = await Promise.race([status.then(() => true), new Promise<false>((r) => (wake = () => r(false)))]);
      if (ended && read >= messages.length) throw new Error('call ended');
    }
    return messages[read++];
  };
  return { messages, status, next };
}

async function runGrpc(ctx: Ctx, s: Extract<Scenario, { kind: 'grpc-register' | 'grpc-forward' }>, name: string): Promise<Outcome> {
  const client = new RawClient(`127.0.0.1:${ctx.edge.grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 }) as unknown as RawGrpcClient;
  const calls: RawCall[] = [];
  let status: Promise<number> | undefined;
  try {
    const register = client.register(new grpc.Metadata());
    calls.push(register);
    const control = watch(register);
    if (s.kind === 'grpc-register' && s.stage === 'pre-hello') {
      register.write(s.message);
      register.end();
      await within(control.status, 5000, 'Register to end');
      return { closed: true };
    }
    register.write(Buffer.from(encodeAgentMessage({ hello: { name, version: 'fuzz' } })));
    const registered = decodeEdgeMessage(await within(control.next(), 5000, 'Registered')).registered;
    assert.ok(registered, 'Registered first');
    if (s.kind === 'grpc-register') {
      register.write(s.message);
      register.end();
      await within(control.status, 5000, 'Register to end');
      return { closed: true };
    }
    const md = new grpc.Metadata();
    md.set(SESSION_METADATA_KEY, registered.sessionId);
    const forward = client.forwardHTTP(md);
    calls.push(forward);
    const stream = watch(forward);
    if (s.stage === 'exchange') {
      await waitFor(() => ((ctx.registry.lookup(name) as unknown as { stats(): { idleStreams: number } } | undefined)?.stats().idleStreams ?? 0) > 0, 5000, 'the idle stream');
      status = publicRequest(ctx, name);
      const head = decodeChunk(await within(stream.next(), 5000, 'request HEADERS'));
      assert.is(head.kind, ChunkKind.HEADERS);
    }
    for (const m of s.messages) forward.write(m);
    forward.end();
    // The stream ends on what was sent, idle or not: a response cut short fails when the stream's end
    // is read, and the edge reads its idle streams too.
    await within(stream.status, 5000, 'ForwardHTTP to end');
    const publicStatus = status && (await status);
    register.end();
    await within(control.status, 5000, 'Register to end');
    return { closed: true, publicStatus };
  } finally {
    for (const c of calls) c.cancel();
    client.close();
    await status?.catch(() => 0);
  }
}

/** gRPC's message framing: a compression flag and a 4-byte length before the message. */
function grpcFrame(message: Uint8Array, claimed = message.byteLength): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(claimed, 1);
  return Buffer.concat([prefix, message]);
}

/**
 * A Register message whose 5-byte gRPC prefix claims `claimed` bytes (first, or after a valid Hello),
 * on a raw HTTP/2 stream: refused on the prefix, before the bytes it claims could be buffered.
 */
async function runPrefix(ctx: Ctx, s: Extract<Scenario, { kind: 'grpc-prefix' }>, name: string): Promise<Outcome> {
  const session = h2connect(`http://127.0.0.1:${ctx.edge.grpcPort}`);
  session.on('error', () => undefined);
  try {
    const req: ClientHttp2Stream = session.request({ ':method': 'POST', ':path': TUNNEL_AGENT_SERVICE.register.path, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    if (s.afterHello) req.write(grpcFrame(encodeAgentMessage({ hello: { name, version: 'fuzz' } })));
    // The stream stays open: only a refusal on the prefix itself answers before the (never sent) rest.
    req.write(grpcFrame(s.body, s.claimed));
    const grpcStatus = await within(
      new Promise<string>((resolve) => {
        // Our side stays open, so the stream never closes: the status (trailers, or trailers-only) is the answer.
        const look = (headers: Record<string, unknown>) => {
          if (headers['grpc-status'] !== undefined) resolve(String(headers['grpc-status']));
        };
        req.on('response', look);
        req.on('trailers', look);
        req.on('close', () => resolve('closed without a status'));
        req.resume();
      }),
      5000,
      'the refusal of a lying prefix',
    );
    assert.is(grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED), `claimed ${s.claimed}`);
    return { closed: true };
  } finally {
    session.destroy();
  }
}

/** A scenario for a failure message: its kind and stage, bytes as hex. */
function describe(s: Scenario): string {
  return JSON.stringify(s, (_key, v: unknown) => ((v as { type?: string })?.type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v)).slice(0, 600);
}

async function runScenario(ctx: Ctx, s: Scenario, i: number): Promise<Outcome> {
  const name = `fz${i}`;
  if (s.kind === 'ws') return runWs(ctx, s, name);
  if (s.kind === 'grpc-prefix') return runPrefix(ctx, s, name);
  return runGrpc(ctx, s, name);
}

async function healthy(ctx: Ctx): Promise<void> {
  for (const name of ['good-ws', 'good-grpc']) {
    const { res, body } = await within(send(ctx.edge, name, '/'), 5000, `${name} to answer`);
    assert.is(res.statusCode, 200, name);
    assert.is(body.toString(), 'good');
  }
}

test.before(async (ctx: Ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('good'));
  ctx.registry = new MemoryRegistry();
  ctx.edge = await startEdge({ pingIntervalMs: 60_000, reconnectGraceMs: 0, openTimeoutMs: 2000, registry: ctx.registry });
  ctx.reconnects = 0;
  ctx.good = [
    await startAgent(ctx.edge, ctx.origin.url, 'good-ws', { transport: 'websocket' }),
    await startAgent(ctx.edge, ctx.origin.url, 'good-grpc', { transport: 'grpc' }),
  ];
  for (const a of ctx.good) a.on('reconnecting', () => ctx.reconnects++);
});

test.after(async (ctx: Ctx) => {
  for (const a of ctx.good ?? []) await a.close();
  await ctx.edge?.close();
  await ctx.origin?.close();
});

test(`${FRAMES} mutated frames over WebSocket (proto, JSON), gRPC and raw HTTP/2 close only their own sessions; the edge serves throughout and returns to its baseline`, async (ctx: Ctx) => {
  const all = scenarios();
  assert.is(all.length, FRAMES);
  const faults: unknown[] = [];
  const onFault = (err: unknown): void => void faults.push(err);
  process.on('uncaughtException', onFault);
  process.on('unhandledRejection', onFault);
  const goodSessions = ['good-ws', 'good-grpc'].map((n) => ctx.registry.lookup(n)?.id);
  const counts = { closed: 0, survived: 0, publicRequests: 0, healthChecks: 0 };
  try {
    const run = async (batch: Scenario[], offset: number): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < batch.length) {
          const i = next++;
          const outcome = await runScenario(ctx, batch[i], offset + i).catch((err: unknown) => {
            throw new Error(`scenario ${offset + i} ${describe(batch[i])} failed: ${String(err)}`, { cause: err });
          });
          counts[outcome.closed ? 'closed' : 'survived']++;
          if (outcome.publicStatus !== undefined) counts.publicRequests++;
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    };
    // Warm-up (code paths compiled, pools filled), then the baseline.
    await run(all.slice(0, HEALTH_EVERY), 0);
    await waitFor(() => ctx.edge.stats().sessions === 2, 5000, 'warm-up sessions to close');
    const baseline = heapBytes();
    for (let at = HEALTH_EVERY; at < all.length; at += HEALTH_EVERY) {
      await run(all.slice(at, at + HEALTH_EVERY), at);
      await healthy(ctx);
      counts.healthChecks++;
    }
    // Nothing of the fuzzed sessions is left.
    await waitFor(() => ctx.edge.stats().sessions === 2 && ctx.edge.stats().wsConnections === 1 && ctx.edge.stats().openExchanges === 0, 5000, 'only the good sessions left');
    assert.equal(['good-ws', 'good-grpc'].map((n) => ctx.registry.lookup(n)?.id), goodSessions, 'the good sessions are the same ones');
    assert.is(ctx.reconnects, 0, 'the good agents never reconnected');
    const faultsMetric = await ctx.edge.metrics.sessionFaults.get();
    assert.equal(faultsMetric.values.map((v) => v.value).filter((v) => v > 0), [], 'no session handler fault');
    const grown = heapBytes() - baseline;
    assert.ok(grown < HEAP_SLACK_BYTES, `heap grew ${(grown / 1048576).toFixed(1)} MiB over its baseline`);
    assert.ok(counts.survived > 50 && counts.closed > 50 && counts.publicRequests > 100, JSON.stringify(counts));
  } finally {
    process.off('uncaughtException', onFault);
    process.off('unhandledRejection', onFault);
  }
  assert.equal(faults.map(String), [], 'no uncaught exception or unhandled rejection');
});

test.run();
