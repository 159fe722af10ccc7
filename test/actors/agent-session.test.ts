import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { AgentSession, type ExchangeStream } from '../../src/actors/agent-session.js';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { waitFor } from '../helpers/harness.js';
import { FakeControlChannel, REGISTERED } from '../helpers/fake-control-channel.js';

const test = suite('actors/agent-session');

/** A stream whose exchanges finish when the test says so. */
class FakeStream implements ExchangeStream {
  status: 'idle' | 'busy' | 'closed' = 'idle';
  finish: Array<(err?: Error) => void> = [];
  begin(id: string): ExchangeDuplex {
    this.status = 'busy';
    let resolve!: () => void;
    const closed = new Promise<void>((r) => (resolve = r));
    const exchange: ExchangeDuplex & { error: Error | undefined } = {
      id,
      source: (async function* () {})(),
      sink: async () => undefined,
      abort: (err) => {
        exchange.error ??= err;
        resolve();
      },
      closed,
      error: undefined,
      buffered: false,
    };
    this.finish.push((err) => {
      exchange.error = err;
      this.status = err ? 'closed' : 'idle';
      resolve();
    });
    return exchange;
  }
  close(): void {
    this.status = 'closed';
  }
}

const head = (id: string): HTTPChunk => ({ kind: ChunkKind.HEADERS, exchangeId: id, method: 'GET', target: '/', headers: [] });

/** A session past its handshake (registered), on `channel`. */
function session(channel: FakeControlChannel, init: Partial<ConstructorParameters<typeof AgentSession>[0]> = {}): AgentSession {
  const s = new AgentSession({ id: 's', name: 'n', channel, logger: silentLogger(), ...init });
  s.start(REGISTERED);
  return s;
}

test('an idle stream carries the exchange without asking the agent', async () => {
  const control = new FakeControlChannel();
  const s = session(control);
  const stream = new FakeStream();
  s.offerStream(stream);
  const exchange = await s.openExchange(head('a'));
  assert.is(exchange.id, 'a');
  assert.is(control.opens.length, 0);
  stream.finish[0]();
  await waitFor(() => s.stats().openExchanges === 0);
  s.abort(new AbortError('done'));
  await s.closed;
});

test('with no idle stream the request HEADERS ride in Open and the attached stream takes over', async () => {
  const control = new FakeControlChannel();
  const s = session(control);
  const opening = s.openExchange(head('b'));
  await waitFor(() => control.opens.length === 1);
  assert.is(control.opens[0].exchangeId, 'b');
  s.attachStream('b', new FakeStream());
  assert.is((await opening).id, 'b');
  s.abort(new AbortError('done'));
  await s.closed;
});

test('an Open nobody answers rejects with ERR_AGENT_TIMEOUT and cancels on the agent', async () => {
  const control = new FakeControlChannel();
  const s = session(control, { openTimeoutMs: 20 });
  try {
    await s.openExchange(head('c'));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_AGENT_TIMEOUT');
  }
  assert.equal(control.cancels, ['c']);
  assert.is(s.stats().pendingOpens, 0);
  s.abort(new AbortError('done'));
  await s.closed;
});

test('exchanges beyond the cap are refused with ERR_AGENT_BUSY', async () => {
  const control = new FakeControlChannel();
  const s = session(control, { maxExchanges: 2 });
  const streams = [new FakeStream(), new FakeStream()];
  for (const st of streams) s.offerStream(st);
  await s.openExchange(head('1'));
  await s.openExchange(head('2'));
  try {
    await s.openExchange(head('3'));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_AGENT_BUSY');
  }
  s.abort(new AbortError('done'));
  await s.closed;
});

test('abort rejects pending Opens, aborts exchanges, closes control: nothing left behind', async () => {
  const control = new FakeControlChannel();
  const s = session(control);
  const stream = new FakeStream();
  s.offerStream(stream);
  const running = await s.openExchange(head('x'));
  const pending = s.openExchange(head('y'));
  await waitFor(() => control.opens.length === 1);
  s.abort(new AbortError('agent gone'));
  await s.closed;
  try {
    await pending;
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_AGENT_UNAVAILABLE');
  }
  assert.ok(running.error);
  assert.ok(control.isClosed);
  assert.equal(s.stats(), { openExchanges: 0, idleStreams: 0, pendingOpens: 0 });
  // After the session is gone, a new exchange is refused with the same code (never hangs).
  const late = await s.openExchange(head('z')).then(
    () => 'opened',
    (err: { code?: string }) => err.code,
  );
  assert.is(late, 'ERR_AGENT_UNAVAILABLE');
});

test('a failed exchange sends Cancel so the agent aborts the origin request', async () => {
  const control = new FakeControlChannel();
  const s = session(control);
  const stream = new FakeStream();
  s.offerStream(stream);
  await s.openExchange(head('f'));
  stream.finish[0](new AbortError('client left'));
  await waitFor(() => control.cancels.includes('f'));
  s.abort(new AbortError('done'));
  await s.closed;
});

test('at the exchange cap an exchange waits for a slot; past the queue bound it is refused (503)', async () => {
  const control = new FakeControlChannel();
  const s = session(control, { maxExchanges: 1, maxQueuedExchanges: 1 });
  const stream = new FakeStream();
  s.offerStream(stream);
  const first = await s.openExchange(head('a'));
  const waiting = s.openExchange(head('b'));
  const refused = await s.openExchange(head('c')).then(
    () => 'opened',
    (err: { code?: string }) => err.code,
  );
  assert.is(refused, 'ERR_AGENT_BUSY');
  assert.is(s.stats().pendingOpens, 1);
  stream.finish[0]();
  await first.closed;
  // The slot freed by "a" goes to "b" (the stream is idle again, but Opens are cheaper to check here).
  await waitFor(() => control.opens.length === 1 || stream.status === 'busy');
  stream.finish[1]?.();
  s.abort(new AbortError('done'));
  await waiting.catch(() => undefined);
});

test('a client that leaves while its exchange waits for a slot stops waiting at once', async () => {
  const control = new FakeControlChannel();
  const s = session(control, { maxExchanges: 1 });
  s.offerStream(new FakeStream());
  await s.openExchange(head('a'));
  const gone = new AbortController();
  const waiting = s.openExchange(head('b'), { signal: gone.signal });
  gone.abort(new AbortError('client left'));
  const code = await waiting.then(
    () => 'opened',
    (err: { code?: string }) => err.code,
  );
  assert.is(code, 'ERR_ABORTED');
  s.abort(new AbortError('done'));
});

test('an exchange that waited for a slot longer than the open timeout gets 503', async () => {
  const control = new FakeControlChannel();
  const s = session(control, { maxExchanges: 1, openTimeoutMs: 50 });
  s.offerStream(new FakeStream());
  await s.openExchange(head('a'));
  const code = await s.openExchange(head('b')).then(
    () => 'opened',
    (err: { code?: string }) => err.code,
  );
  assert.is(code, 'ERR_AGENT_BUSY');
  s.abort(new AbortError('done'));
});

/** A control channel of a multiplexing transport: exchanges open on it directly, on a FakeStream each. */
class DirectControlChannel extends FakeControlChannel {
  readonly streams: FakeStream[] = [];
  openDirect(h: HTTPChunk): ExchangeDuplex {
    const stream = new FakeStream();
    this.streams.push(stream);
    return stream.begin(h.exchangeId ?? '');
  }
}

test('openNow starts an exchange in the same turn, but never before Registered, past a queued message, at the cap or while draining', async () => {
  const control = new DirectControlChannel();
  const s = session(control, { maxExchanges: 1 });
  // Still admitting: Registered has not gone out, so an exchange must not overtake it.
  assert.is(s.openNow(head('early')), undefined);
  await waitFor(() => s.status === 'registered');
  const first = s.openNow(head('a'));
  assert.is(first?.id, 'a');
  assert.is(s.stats().openExchanges, 1);
  // At the cap: the caller waits in line through openExchange instead.
  assert.is(s.openNow(head('b')), undefined);
  const waiting = s.openExchange(head('b'));
  control.streams[0].finish[0]();
  assert.is((await waiting).id, 'b');
  control.streams[1].finish[0]();
  await waitFor(() => s.stats().openExchanges === 0);
  // A Drain in the mailbox comes first: nothing opens past it, and nothing once it is handled.
  s.drain();
  assert.is(s.openNow(head('c')), undefined);
  await waitFor(() => s.draining);
  assert.is(s.openNow(head('d')), undefined);
  assert.is(control.streams.length, 2);
  s.abort(new AbortError('done'));
  await s.closed;
});

test("openNow takes an idle stream of the pool in the same turn; with none idle it sends nothing and the caller's Open waits in line", async () => {
  const control = new FakeControlChannel();
  const s = session(control);
  await waitFor(() => s.status === 'registered');
  // No idle stream: an Open to the agent is a round trip, which only openExchange may start.
  assert.is(s.openNow(head('a')), undefined);
  assert.is(control.opens.length, 0);
  const stream = new FakeStream();
  s.offerStream(stream);
  await waitFor(() => s.stats().idleStreams === 1);
  const first = s.openNow(head('b'));
  assert.is(first?.id, 'b');
  assert.is(stream.status, 'busy');
  assert.equal(s.stats(), { ...s.stats(), openExchanges: 1, idleStreams: 0 });
  // The pool is empty again: the next one goes the Open way.
  assert.is(s.openNow(head('c')), undefined);
  stream.finish[0]();
  await waitFor(() => s.stats().openExchanges === 0);
  assert.is(control.opens.length, 0);
  s.abort(new AbortError('done'));
  await s.closed;
});

test.run();
