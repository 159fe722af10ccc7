import { Writable } from 'node:stream';
import { pino } from 'pino';
import * as assert from 'uvu/assert';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { WS_PROTOCOL_JSON } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MAX_WS_CLOSE_REASON_BYTES } from '../../src/streams/ws-close-reason.js';
import { WS_CLOSE_BAD_HELLO } from '../../src/well-known.js';
import { hostileEdgeSuite } from '../helpers/hostile-edge-suite.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { send, waitFor, within } from '../helpers/harness.js';

/** Log lines of the edge under test; the name `faulty` makes its 'agent registered' line throw. */
const logLines: Array<{ msg: string; name?: string }> = [];
const logger = pino(
  {
    level: 'info',
    hooks: {
      logMethod(args, method) {
        const [fields, msg] = args as unknown as [{ name?: string }, string];
        if (fields?.name === 'faulty' && msg === 'agent registered') throw new Error('injected handler fault');
        method.apply(this, args);
      },
    },
  },
  new Writable({
    write(line: Buffer, _enc, done) {
      logLines.push(JSON.parse(line.toString()) as { msg: string; name?: string });
      done();
    },
  }),
);

const test = hostileEdgeSuite('edge/ws-endpoint', { logger });
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

// A throw in a session's handler (here the log line after registration) escaped to the process.
test('an exception in one session handler closes that session (1011), is logged and counted; the edge stays up', async (ctx) => {
  ctx.raw = await RawWsAgent.open(ctx.edge);
  ctx.raw.send(RawWsAgent.hello('faulty'));
  await within(ctx.raw.closed, 5000, 'the close');
  assert.is(ctx.raw.closeCode, 1011);
  const faults = await ctx.edge.metrics.sessionFaults.get();
  assert.equal(faults.values.map((v) => [v.labels.transport, v.value]), [['websocket', 1]]);
  assert.ok(logLines.some((l) => l.msg === 'closing agent session: handler fault' && l.name === 'faulty'));
  await waitFor(() => ctx.edge.stats().sessions === 1, 5000, 'the faulty session to be dropped');
});

test.run();
