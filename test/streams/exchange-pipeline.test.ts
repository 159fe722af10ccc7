import { Writable } from 'node:stream';
import { pino } from 'pino';
import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, ExchangeKind, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { MemoryRegistry } from '../../src/actors/registry.js';
import { ExchangeResetError } from '../../src/errors.js';
import { loggerOptions, type Logger } from '../../src/logger.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { countData, ExchangePipeline } from '../../src/streams/exchange-pipeline.js';
import { send, startAgent, startEdge, startOrigin, waitFor, within } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite('streams/exchange-pipeline');

type Line = Record<string, unknown>;

function capture(name: string): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Line);
      cb();
    },
  });
  return { logger: pino(loggerOptions('info', name), sink), lines };
}

/** An exchange that settles only when told (abort, or `finish`). */
function fakeExchange(): ExchangeDuplex & { resetCode?: ResetCode; finish(): void } {
  let settle!: () => void;
  const ex = {
    id: 'x',
    buffered: false,
    error: undefined as Error | undefined,
    resetCode: undefined as ResetCode | undefined,
    closed: new Promise<void>((resolve) => (settle = resolve)),
    source: (async function* () {})(),
    sink: async () => undefined,
    abort(err: Error, code?: ResetCode) {
      if (ex.error) return;
      ex.error = err;
      ex.resetCode = code;
      settle();
    },
    finish: () => settle(),
  };
  return ex;
}

const head = (exchangeKind?: ExchangeKind): HTTPChunk => ({ kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], exchangeKind });

test('countData() adds the DATA bytes that pass and passes every chunk on', async () => {
  const counter = { bytes: 0 };
  const out: HTTPChunk[] = [];
  for await (const c of countData(counter)([head(), dataChunk(new Uint8Array(3)), dataChunk(new Uint8Array(4)), { kind: ChunkKind.TRAILERS, headers: [] }])) out.push(c);
  assert.is(counter.bytes, 7);
  assert.is(out.length, 4);
});

test('failed aborts with the exchange\'s error once it fails, and never when it completes', async () => {
  const p = new ExchangePipeline({ id: 'r', method: 'GET', path: '/', logger: capture('t').logger });
  const ex = fakeExchange();
  p.attach(ex);
  const err = new Error('gone');
  p.abort(err, ResetCode.CANCEL);
  await ex.closed;
  await Promise.resolve();
  assert.is(p.failed.reason, err);
  assert.is(ex.resetCode, ResetCode.CANCEL);
  const q = new ExchangePipeline({ id: 'r', method: 'GET', path: '/', logger: capture('t').logger });
  const done = fakeExchange();
  q.attach(done);
  done.finish();
  await done.closed;
  await Promise.resolve();
  assert.is(q.failed.aborted, false);
});

test('the idle action ends the exchange with ERR_IDLE_TIMEOUT and CANCEL to the peer', () => {
  const p = new ExchangePipeline({ id: 'r', method: 'GET', path: '/', logger: capture('t').logger });
  const ex = fakeExchange();
  p.attach(ex);
  p.idleAction(100)();
  assert.is((ex.error as { code?: string }).code, 'ERR_IDLE_TIMEOUT');
  assert.is(ex.resetCode, ResetCode.CANCEL);
});

test('accepts() takes http (and a head without a kind) and refuses stream and datagram with RESET', () => {
  for (const kind of [undefined, ExchangeKind.HTTP]) {
    const p = new ExchangePipeline({ id: 'r', method: 'GET', path: '/', logger: capture('t').logger });
    const ex = fakeExchange();
    p.attach(ex);
    assert.ok(p.accepts(head(kind)));
    assert.is(ex.error, undefined);
  }
  for (const kind of [ExchangeKind.STREAM, ExchangeKind.DATAGRAM]) {
    const p = new ExchangePipeline({ id: 'r', method: 'GET', path: '/', logger: capture('t').logger });
    const ex = fakeExchange();
    p.attach(ex);
    assert.not.ok(p.accepts(head(kind)));
    assert.is((ex.error as { code?: string }).code, 'ERR_EXCHANGE_KIND');
    assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR);
  }
});

test('finish() writes one line, "request" or "request failed" with err and code', () => {
  const { logger, lines } = capture('t');
  const ok = new ExchangePipeline({ id: 'r1', method: 'POST', path: '/a', logger, fields: { host: 'h' } });
  ok.status = 201;
  ok.bytesIn.bytes = 5;
  const entry = ok.finish(undefined);
  assert.equal(Object.keys(entry).sort(), ['bytesIn', 'bytesOut', 'id', 'method', 'ms', 'path', 'status']);
  const bad = new ExchangePipeline({ id: 'r2', method: 'GET', path: '/b', logger });
  const failed = bad.finish(new ExchangeResetError('reset by peer', ResetCode.ORIGIN_ERROR, { peerReason: 'why' }));
  assert.is(failed.code, 'ERR_EXCHANGE_RESET');
  assert.is(lines[0]!.msg, 'request');
  assert.is(lines[0]!.host, 'h');
  assert.is(lines[0]!.bytesIn, 5);
  assert.is(lines[1]!.msg, 'request failed');
  assert.is(lines[1]!.peerReason, 'why');
});

// The edge and the agent once logged one request under different field names and counted bytes apart.
test('one request logs the same fields, id and byte counts on the edge and on the agent', async () => {
  const origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end('0123456789'));
  });
  const edgeLog = capture('edge');
  const agentLog = capture('agent');
  const edge = await startEdge({ logger: edgeLog.logger });
  const agent = await startAgent(edge, origin.url, 'logged', { logger: agentLog.logger });
  try {
    const { body } = await send(edge, 'logged', '/up?x=1', { method: 'POST', body: 'hello', headers: { 'x-request-id': 'ignored-untrusted' } });
    assert.is(body.toString(), '0123456789');
    await waitFor(() => edgeLog.lines.some((l) => l.msg === 'request') && agentLog.lines.some((l) => l.msg === 'request'), 5_000, 'both log lines');
    const e = edgeLog.lines.find((l) => l.msg === 'request')!;
    const a = agentLog.lines.find((l) => l.msg === 'request')!;
    for (const field of ['id', 'method', 'path', 'status', 'bytesIn', 'bytesOut']) assert.equal(a[field], e[field], field);
    assert.is(e.bytesIn, 5);
    assert.is(e.bytesOut, 10);
    assert.is(typeof a.ms, 'number');
  } finally {
    await agent.close();
    await edge.close();
    await origin.close();
  }
});

for (const [transport, wsCodec] of [['grpc', undefined], ['websocket', 'proto'], ['websocket', 'json']] as const) {
  test(`an exchange of kind stream is refused by the agent with RESET and a logged reason (${transport}${wsCodec ? `+${wsCodec}` : ''})`, async () => {
    const origin = await startOrigin((_req, res) => res.end('never'));
    const registry = new MemoryRegistry(0, 0);
    const agentLog = capture('agent');
    const edge = await startEdge({ registry });
    const agent = await startAgent(edge, origin.url, 'kinds', { logger: agentLog.logger, transport, wsCodec });
    try {
      const session = registry.lookup('kinds')!;
      const open = { ...head(ExchangeKind.STREAM), exchangeId: 'stream-1' };
      const exchange = await session.openExchange(open);
      const sent = exchange.sink((async function* () { yield open; })()).catch(() => undefined);
      let refused: unknown;
      try {
        for await (const _ of exchange.source) assert.unreachable('the agent answered');
      } catch (err) {
        refused = err;
      }
      await within(sent, 5_000, 'the sink');
      assert.instance(refused, ExchangeResetError);
      assert.is((refused as ExchangeResetError).resetCode, ResetCode.PROTOCOL_ERROR);
      assert.match((refused as ExchangeResetError).peerReason ?? '', /"stream" is not served/);
      await waitFor(() => agentLog.lines.some((l) => l.msg === 'request failed'), 5_000, 'the agent\'s log line');
      assert.is(agentLog.lines.find((l) => l.msg === 'request failed')!.code, 'ERR_EXCHANGE_KIND');
    } finally {
      await agent.close();
      await edge.close();
      await origin.close();
    }
  });
}

test.run();
