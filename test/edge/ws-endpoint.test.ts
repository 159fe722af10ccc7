import { Writable } from 'node:stream';
import { pino } from 'pino';
import * as assert from 'uvu/assert';
import { MemoryRegistry, type ClaimOptions } from '../../src/actors/registry.js';
import type { AgentSession } from '../../src/actors/agent-session.js';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { WS_PROTOCOL_JSON, type WsFrame } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MAX_WS_CONTROL_BACKLOG } from '../../src/edge/ws-endpoint.js';
import { MAX_WS_CLOSE_REASON_BYTES } from '../../src/streams/ws-close-reason.js';
import { WS_CLOSE_BAD_HELLO } from '../../src/well-known.js';
import { hostileEdgeSuite } from '../helpers/hostile-edge-suite.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { send, waitFor, within } from '../helpers/harness.js';

/** Log lines of the edge under test; the name `faulty` makes its 'agent registered' line throw. */
const logLines: Array<{ msg: string; tunnel?: string }> = [];
const logger = pino(
  {
    level: 'info',
    hooks: {
      logMethod(args, method) {
        const [fields, msg] = args as unknown as [{ tunnel?: string }, string];
        if (fields?.tunnel === 'faulty' && msg === 'agent registered') throw new Error('injected handler fault');
        method.apply(this, args);
      },
    },
  },
  new Writable({
    write(line: Buffer, _enc, done) {
      logLines.push(JSON.parse(line.toString()) as { msg: string; tunnel?: string });
      done();
    },
  }),
);

/** Claims of `slow` wait until the test opens the gate. */
class GatedRegistry extends MemoryRegistry {
  gate: Promise<void> | undefined;
  waiting = false;
  override async claim(name: string, session: AgentSession, options: ClaimOptions): Promise<void> {
    if (name === 'slow' && this.gate) {
      this.waiting = true;
      await this.gate;
    }
    return super.claim(name, session, options);
  }
}

const registry = new GatedRegistry();
const test = hostileEdgeSuite('edge/ws-endpoint', { logger, registry });
const SOME_PEER_TEXT = 'é'.repeat(100);

function assertNoPeerText(raw: RawWsAgent): void {
  assert.ok(raw.closeReasonBytes.byteLength <= MAX_WS_CLOSE_REASON_BYTES, `${raw.closeReasonBytes.byteLength} bytes`);
  assert.not.match(raw.closeReason, /é|x{20}/);
}

// Each of these once put the peer's text in a close reason longer than 123 bytes: `ws` threw
// from the message handler and the edge process died, before any token was checked.
const closeReasonSources: Array<[string, (raw: RawWsAgent, edge: Edge) => Promise<void>, number]> = [
  ['a JSON frame type', async (raw) => raw.sendRaw(JSON.stringify({ stream: 0, type: SOME_PEER_TEXT })), 1002],
  ['a Hello name', async (raw) => raw.send(RawWsAgent.hello(SOME_PEER_TEXT)), WS_CLOSE_BAD_HELLO],
  [
    'a response header name',
    async (raw, edge) => {
      raw.send(RawWsAgent.hello('header-name'));
      void send(edge, 'header-name', '/').catch(() => undefined);
      const { stream } = await raw.nextExchange();
      raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: SOME_PEER_TEXT, value: 'v' }] } });
    },
    1002,
  ],
  [
    'the name of a header with a bad value',
    async (raw, edge) => {
      raw.send(RawWsAgent.hello('header-value'));
      void send(edge, 'header-value', '/').catch(() => undefined);
      const { stream } = await raw.nextExchange();
      raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'x'.repeat(200), value: 'bad\u0001' }] } });
    },
    1002,
  ],
];

for (const [source, hostile, code] of closeReasonSources) {
  test(`peer text in ${source} closes only that connection (${code}), with a short reason that does not quote it`, async (ctx) => {
    ctx.raw = await RawWsAgent.open(ctx.edge, { protocol: WS_PROTOCOL_JSON });
    await hostile(ctx.raw, ctx.edge);
    await within(ctx.raw.closed, 5000, 'the close');
    assert.is(ctx.raw.closeCode, code, ctx.raw.closeReason);
    assertNoPeerText(ctx.raw);
  });
}

test('the public page of an exchange whose agent sent a bad header quotes nothing of it', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'bad-header');
  const pending = send(ctx.edge, 'bad-header', '/');
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: '<script>', value: 'v' }] } });
  const { res, body } = await pending;
  assert.is(res.statusCode, 502);
  assert.not.match(body.toString(), /script/);
  await within(ctx.raw.closed, 5000, 'the close');
});

// Hellos arriving together were each admitted (the guard was set after `await admit`): when the
// connection closed, only the last session went; the others stayed registered, their names answering
// 502 forever and counting against max-agents.
test('several Hellos in one read: the second is a protocol error that closes the connection; no session is left', async (ctx) => {
  ctx.raw = await RawWsAgent.open(ctx.edge);
  const hellos: WsFrame[] = ['hello-a', 'hello-b', 'hello-c'].map((name) => RawWsAgent.hello(name));
  ctx.raw.sendBurst(hellos);
  await within(ctx.raw.closed, 5000, 'the close');
  assert.is(ctx.raw.closeCode, 1002);
  await waitFor(() => ctx.edge.stats().sessions === 1, 5000, 'sessions back to the good one');
  // The names are free again.
  const again = await RawWsAgent.connect(ctx.edge, 'hello-a');
  await again.close();
});

// A connection that closed while its admission was still running left a registered session that
// nothing would ever close.
test('a connection that closes during admission leaves no session behind', async (ctx) => {
  let open!: () => void;
  registry.gate = new Promise<void>((resolve) => (open = resolve));
  ctx.raw = await RawWsAgent.open(ctx.edge);
  ctx.raw.send(RawWsAgent.hello('slow'));
  await waitFor(() => registry.waiting, 5000, 'admission to start');
  await ctx.raw.close();
  await waitFor(() => ctx.edge.stats().wsConnections === 1, 5000, 'the edge to see the close');
  open();
  registry.gate = undefined;
  await waitFor(() => ctx.edge.stats().sessions === 1, 5000, 'the late session to be dropped');
});

// A throw in a session's handler (here the log line after registration) escaped to the process.
test('an exception in one session handler closes that session (1011), is logged and counted; the edge stays up', async (ctx) => {
  ctx.raw = await RawWsAgent.open(ctx.edge);
  ctx.raw.send(RawWsAgent.hello('faulty'));
  await within(ctx.raw.closed, 5000, 'the close');
  assert.is(ctx.raw.closeCode, 1011);
  const faults = await ctx.edge.metrics.sessionFaults.get();
  assert.equal(faults.values.map((v) => [v.labels.transport, v.value]), [['websocket', 1]]);
  assert.ok(logLines.some((l) => l.msg === 'closing agent session: handler fault' && l.tunnel === 'faulty'));
  await waitFor(() => ctx.edge.stats().sessions === 1, 5000, 'the faulty session to be dropped');
});

// The control channel is read by the session one message at a time: a peer that floods it must not
// grow the edge's memory without bound.
test('control messages beyond the backlog the session has not read close the connection (1002)', async (ctx) => {
  ctx.raw = await RawWsAgent.open(ctx.edge);
  const flood: WsFrame[] = [RawWsAgent.hello('flood'), ...Array.from({ length: MAX_WS_CONTROL_BACKLOG + 1 }, (_, i) => ({ stream: 0, agent: { pong: { nonce: i + 1 } } }) as WsFrame)];
  ctx.raw.sendBurst(flood);
  await within(ctx.raw.closed, 5000, 'the close');
  assert.is(ctx.raw.closeCode, 1002);
  await waitFor(() => ctx.edge.stats().sessions === 1, 5000, 'no session left of it');
});

test.run();
