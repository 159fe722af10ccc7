import { Writable } from 'node:stream';
import { pino } from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import { ChunkKind, ResetCode } from '../../src/codec/http-chunk.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { loggerOptions } from '../../src/logger.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Fetched, type Origin } from '../helpers/harness.js';

interface Ctx {
  edge: Edge;
  /** The edge's log, one parsed JSON line each. */
  log: Array<Record<string, unknown>>;
  /** A local service that is down: its port refuses connections. */
  down: Origin;
  cleanup: Array<() => Promise<unknown>>;
}

const IDLE_TIMEOUT_MS = 300;
/** What no public page may carry: a peer's words, an address, a system error, protocol jargon. */
const INTERNAL_TEXT = /127\.0\.0\.1|10\.0\.0\.|ECONN|errno|stream|chunk|RESET|<script>|\bat \w/i;

const test = suite<Ctx>('e2e/error-pages');

test.before(async (ctx) => {
  ctx.log = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) ctx.log.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  ctx.edge = await startEdge({ logger: pino(loggerOptions('info', 'edge'), sink), pingIntervalMs: 60_000, limits: { idleTimeoutMs: IDLE_TIMEOUT_MS } });
  ctx.down = await startOrigin((_req, res) => res.end());
  await ctx.down.close();
});

test.before.each((ctx) => {
  ctx.cleanup = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
  await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'exchanges released');
});

test.after(async (ctx) => {
  await ctx.edge.close();
});

async function agent(ctx: Ctx, name: string, transport: 'websocket' | 'grpc', wsCodec?: 'json' | 'proto'): Promise<Agent> {
  const a = await startAgent(ctx.edge, ctx.down.url, name, { transport, wsCodec });
  ctx.cleanup.push(() => a.close());
  return a;
}

async function raw(ctx: Ctx, name: string): Promise<RawWsAgent> {
  const r = await RawWsAgent.connect(ctx.edge, name);
  ctx.cleanup.push(() => r.close());
  return r;
}

/** Asserts the page: status, code, one plain sentence and nothing internal. */
function assertPage({ res, body }: Fetched, status: number, code: string): void {
  assert.is(res.statusCode, status);
  assert.is(res.headers['x-jetty-error'], code);
  const [first, sentence, ...rest] = body.toString().split('\n');
  assert.match(first, new RegExp(`^${status} `));
  assert.match(sentence, /^[A-Z][^\n]*\.$/);
  assert.equal(rest, ['']);
  assert.not.match(body.toString(), INTERNAL_TEXT);
}

/** The edge's log line for the failed request to `path`. */
async function logLine(ctx: Ctx, path: string): Promise<Record<string, unknown>> {
  await waitFor(() => ctx.log.some((l) => l.path === path && l.msg === 'request failed'), 5000, `the log line of ${path}`);
  return ctx.log.find((l) => l.path === path && l.msg === 'request failed')!;
}

test('local service down behind a WebSocket agent: 502 ERR_ORIGIN_UNAVAILABLE; the detail is in the edge log with the request id', async (ctx) => {
  // Guards against the page saying "Agent Unavailable" (as if no agent were there) and quoting the agent's
  // error, with the local service's address, to the public.
  for (const wsCodec of ['proto', 'json'] as const) {
    await agent(ctx, `down-${wsCodec}`, 'websocket', wsCodec);
    const path = `/down-${wsCodec}`;
    assertPage(await send(ctx.edge, `down-${wsCodec}`, path), 502, 'ERR_ORIGIN_UNAVAILABLE');
    const line = await logLine(ctx, path);
    assert.type(line.id, 'string');
    assert.match(String(line.peerReason), /ECONNREFUSED/);
  }
});

test('local service down behind a gRPC agent: 502 with one plain sentence, nothing internal', async (ctx) => {
  // Guards against "stream ended inside an exchange" on the public page.
  await agent(ctx, 'down-grpc', 'grpc');
  const fetched = await send(ctx.edge, 'down-grpc', '/');
  // The agent half-closes a stream it retires, so its RESET(ORIGIN_ERROR) arrives before the end.
  assertPage(fetched, 502, 'ERR_ORIGIN_UNAVAILABLE');
});

test('a RESET carrying the agent\'s own words: the page says which kind of failure, never the words', async (ctx) => {
  // Guards against a peer's text (markup, addresses) reaching a public page through a RESET reason.
  const r = await raw(ctx, 'resets');
  const reason = '<script>alert(1)</script> connect ECONNREFUSED 10.0.0.7:5432';
  const cases: Array<[ResetCode, string]> = [
    [ResetCode.ORIGIN_ERROR, 'ERR_ORIGIN_UNAVAILABLE'],
    [ResetCode.PROTOCOL_ERROR, 'ERR_AGENT_PROTOCOL'],
    [ResetCode.INTERNAL, 'ERR_AGENT_UNAVAILABLE'],
  ];
  for (const [code, expected] of cases) {
    const pending = send(ctx.edge, 'resets', `/reset-${code}`);
    const { stream } = await r.nextExchange();
    r.send({ stream, chunk: { kind: ChunkKind.RESET, code, reason } });
    assertPage(await pending, 502, expected);
    assert.match(String((await logLine(ctx, `/reset-${code}`)).peerReason), /10\.0\.0\.7/);
  }
});

test('an agent that breaks the protocol: 502 ERR_AGENT_PROTOCOL', async (ctx) => {
  const r = await raw(ctx, 'garbage');
  const pending = send(ctx.edge, 'garbage', '/');
  await r.nextExchange();
  r.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
  assertPage(await pending, 502, 'ERR_AGENT_PROTOCOL');
});

test('name known but its agent gone: 502 ERR_AGENT_UNAVAILABLE; a name never connected stays 404 and is not echoed', async (ctx) => {
  const r = await raw(ctx, 'leaving');
  const pending = send(ctx.edge, 'leaving', '/');
  await r.nextExchange();
  await r.close();
  assertPage(await pending, 502, 'ERR_AGENT_UNAVAILABLE');
  const unknown = await send(ctx.edge, 'nobody-here', '/');
  assertPage(unknown, 404, 'ERR_TUNNEL_NOT_FOUND');
  assert.not.match(unknown.body.toString(), 'nobody-here');
});

test('an agent that never answers: 504 ERR_IDLE_TIMEOUT', async (ctx) => {
  await raw(ctx, 'mute');
  assertPage(await send(ctx.edge, 'mute', '/'), 504, 'ERR_IDLE_TIMEOUT');
});

test.run();
