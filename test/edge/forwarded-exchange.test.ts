import { pushable, type Pushable } from 'it-pushable';
import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { ExchangeResetError, TransportClosedError } from '../../src/errors.js';
import { ForwardedExchange } from '../../src/edge/forwarded-exchange.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { within } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite('edge/forwarded-exchange');

const HEAD: HTTPChunk = { kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'POST', target: '/', headers: [] };
const OK: HTTPChunk = { kind: ChunkKind.HEADERS, status: 200, headers: [] };

/** One attempt on an owner, driven by the test: what it was sent, and its answer or reset. */
class Owner implements ExchangeDuplex {
  readonly id = 'x1';
  readonly sent: HTTPChunk[] = [];
  sinkEnded = false;
  error: Error | undefined;
  readonly closed: Promise<void>;
  readonly buffered = false;
  private readonly answer: Pushable<HTTPChunk> = pushable({ objectMode: true });
  private resolveClosed!: () => void;
  readonly source: AsyncIterable<HTTPChunk>;

  constructor() {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    const answer = this.answer;
    this.source = (async function* () {
      yield* answer;
    })();
  }

  async sink(source: AsyncIterable<HTTPChunk>): Promise<void> {
    for await (const chunk of source) {
      if (this.error) throw this.error;
      this.sent.push(chunk);
    }
    this.sinkEnded = true;
  }

  /** The owner answers `chunks` and ends. */
  respond(...chunks: HTTPChunk[]): void {
    for (const c of chunks) this.answer.push(c);
    this.answer.end();
    this.resolveClosed();
  }

  reset(code: ResetCode): void {
    this.error = new ExchangeResetError('reset by peer', code);
    this.answer.end(this.error);
    this.resolveClosed();
  }

  abort(err: Error): void {
    this.error ??= err;
    this.answer.end(err);
    this.resolveClosed();
  }
}

/** A request body the test feeds chunk by chunk (the head first). */
function request(): Pushable<HTTPChunk> {
  const body = pushable<HTTPChunk>({ objectMode: true });
  body.push(HEAD);
  return body;
}

async function answerOf(fx: ForwardedExchange): Promise<HTTPChunk[]> {
  const out: HTTPChunk[] = [];
  for await (const c of fx.source) out.push(c);
  return out;
}

/**
 * A request without a body forwarded to `first`, which refuses it as misdirected; `second` is the
 * owner a re-read finds. Returns once the refusal has been seen, with the answer being read.
 */
async function refusedOnce(first: Owner, second: Owner): Promise<{ fx: ForwardedExchange; answer: Promise<unknown>; reopened: () => number }> {
  let reopened = 0;
  const fx = new ForwardedExchange(first, HEAD, async () => (reopened++, second));
  const body = request();
  body.end();
  await fx.sink(body);
  assert.ok(first.sinkEnded);
  const answer = answerOf(fx).catch((err: unknown) => err);
  first.reset(ResetCode.MISDIRECTED);
  await within(new Promise<void>((resolve) => setImmediate(resolve)), 1000, 'a turn');
  return { fx, answer, reopened: () => reopened };
}

test('a request without a body refused as misdirected is sent again, whole, to the owner found next', async () => {
  const first = new Owner();
  const second = new Owner();
  const { fx, answer, reopened } = await refusedOnce(first, second);
  second.respond(OK, dataChunk(Buffer.from('hi')));
  const chunks = (await within(answer, 2000, 'the answer')) as HTTPChunk[];
  assert.is(reopened(), 1);
  assert.is(chunks[0].status, 200);
  assert.is(Buffer.from(chunks[1].data!).toString(), 'hi');
  // The second owner got the request again: its head (skipped by a real stream, sent at open) and END.
  assert.ok(second.sinkEnded);
  await fx.closed;
  assert.is(fx.error, undefined);
});

test('a body that had not started when the refusal came goes to the new owner, none of it to the first', async () => {
  const first = new Owner();
  const second = new Owner();
  const fx = new ForwardedExchange(first, HEAD, async () => second);
  const body = request();
  const upload = fx.sink(body);
  const answer = answerOf(fx);
  first.reset(ResetCode.MISDIRECTED);
  await within(new Promise<void>((resolve) => setImmediate(resolve)), 1000, 'a turn');
  body.push(dataChunk(Buffer.from('part one ')));
  body.push(dataChunk(Buffer.from('part two')));
  body.end();
  await within(upload, 2000, 'the upload');
  assert.equal(first.sent, []);
  assert.is(Buffer.concat(second.sent.map((c) => c.data!)).toString(), 'part one part two');
  second.respond(OK);
  assert.is((await answer)[0].status, 200);
});

test('once body bytes went to the first owner, or its answer began, a misdirected refusal is the error: no retry', async () => {
  const first = new Owner();
  let reopened = 0;
  const fx = new ForwardedExchange(first, HEAD, async () => (reopened++, new Owner()));
  const body = request();
  body.push(dataChunk(Buffer.from('already sent')));
  const upload = fx.sink(body).catch((err: unknown) => err);
  await within(
    (async () => {
      while (first.sent.length === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    })(),
    1000,
    'the body to reach the first owner',
  );
  const answer = answerOf(fx).catch((err: unknown) => err);
  first.reset(ResetCode.MISDIRECTED);
  const err = (await answer) as ExchangeResetError;
  assert.is(err.resetCode, ResetCode.MISDIRECTED);
  assert.is(reopened, 0);
  body.end();
  await upload;
  await fx.closed;
  assert.is((fx.error as ExchangeResetError).resetCode, ResetCode.MISDIRECTED);
});

test('a peer link closed with 1001 (a drained owner) before any answer counts as a refusal; a link cut (1006) does not', async () => {
  for (const [code, retried] of [[1001, true], [1006, false]] as const) {
    const first = new Owner();
    const second = new Owner();
    let reopened = 0;
    let cause: Error | undefined;
    const fx = new ForwardedExchange(first, HEAD, async (why) => ((cause = why), reopened++, second));
    const body = request();
    body.end();
    await fx.sink(body);
    const answer = answerOf(fx).catch((err: unknown) => err);
    first.abort(new TransportClosedError(`WebSocket closed (${code})`, { closeCode: code }));
    if (retried) second.respond(OK);
    const got = await within(answer, 2000, 'the answer or the failure');
    assert.is(reopened, retried ? 1 : 0, `close code ${code}`);
    if (retried) {
      assert.is((got as HTTPChunk[])[0].status, 200);
      assert.is((cause as TransportClosedError).closeCode, 1001, 'the retry learns why');
    } else {
      assert.is((got as TransportClosedError).closeCode, 1006);
    }
  }
});

test('one retry at most: a second misdirected refusal is the error', async () => {
  const second = new Owner();
  const { answer, reopened } = await refusedOnce(new Owner(), second);
  second.reset(ResetCode.MISDIRECTED);
  const err = (await within(answer, 2000, 'the failure')) as ExchangeResetError;
  assert.is(err.resetCode, ResetCode.MISDIRECTED);
  assert.is(reopened(), 1);
});

test('any other reset is not retried', async () => {
  const first = new Owner();
  let reopened = 0;
  const fx = new ForwardedExchange(first, HEAD, async () => (reopened++, new Owner()));
  const answer = answerOf(fx).catch((err: unknown) => err);
  first.reset(ResetCode.ORIGIN_ERROR);
  const err = (await answer) as ExchangeResetError;
  assert.is(err.resetCode, ResetCode.ORIGIN_ERROR);
  assert.is(reopened, 0);
});

test.run();
