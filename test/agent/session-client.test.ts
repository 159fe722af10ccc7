import * as assert from 'uvu/assert';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import type { AgentMessage } from '../../src/codec/tunnel-codec.js';
import { AbortError, AgentUnavailableError, NameTakenError } from '../../src/errors.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { SessionClient, type Registered, type SessionClientInit, type SessionTransport } from '../../src/agent/session-client.js';
import { suite } from '../helpers/suite.js';

/** A transport that moves nothing: it records what the session asks of it. */
class FakeTransport implements SessionTransport {
  readonly sent: AgentMessage[] = [];
  readonly opened: HTTPChunk[] = [];
  started: Registered | undefined;
  closedWith: Error | undefined;
  send(msg: AgentMessage): void {
    this.sent.push(msg);
  }
  start(r: Registered): void {
    this.started = r;
  }
  open(head: HTTPChunk): void {
    this.opened.push(head);
  }
  close(err: Error): void {
    this.closedWith ??= err;
  }
  idleStreams(): number {
    return 3;
  }
}

/** An exchange whose end the test decides. */
function fakeExchange(id: string): ExchangeDuplex & { finish(): void; aborted?: Error } {
  let finish!: () => void;
  const closed = new Promise<void>((resolve) => (finish = resolve));
  const ex = {
    id,
    source: (async function* () {})(),
    sink: async () => undefined,
    buffered: false,
    error: undefined,
    closed,
    finish,
    aborted: undefined as Error | undefined,
    abort(err: Error) {
      ex.aborted = err;
      finish();
    },
  };
  return ex;
}

const REGISTERED: Registered = { name: 'demo', url: 'http://demo.example.test/', sessionId: 's1', resumeSecret: 'r1' };

function session(init: Partial<SessionClientInit> = {}): { s: SessionClient; t: FakeTransport } {
  const s = new SessionClient({ name: 'demo', version: 'test', domain: 'example.test', where: 'edge', onExchange: async () => undefined, ...init });
  return { s, t: new FakeTransport() };
}

async function registered(init: Partial<SessionClientInit> = {}): Promise<{ s: SessionClient; t: FakeTransport }> {
  const { s, t } = session(init);
  const done = s.register(t);
  s.receive({ registered: REGISTERED });
  await done;
  return { s, t };
}

const test = suite('agent/session-client');

test('register() sends Hello (with the resume ticket) and resolves on a valid Registered; the transport starts', async () => {
  const { s, t } = session({ resume: 's0', resumeSecret: 'r0', window: 262144 });
  const done = s.register(t);
  assert.equal(t.sent, [{ hello: { name: 'demo', version: 'test', window: 262144, resume: 's0', resumeSecret: 'r0', foldedChunks: true } }]);
  assert.is(s.status, 'hello');
  s.receive({ registered: REGISTERED });
  assert.is(await done, s);
  assert.is(s.status, 'registered');
  assert.is(t.started, REGISTERED);
  assert.is(s.sessionId, 's1');
  assert.is(s.resumeSecret, 'r1');
  s.abort(new AbortError('test over'));
});

test('a Registered for another name is a protocol error: register() rejects ERR_PROTOCOL and the transport closes', async () => {
  const { s, t } = session();
  const done = s.register(t);
  s.receive({ registered: { ...REGISTERED, name: 'other' } });
  const err = await done.catch((e: unknown) => e);
  assert.is((err as { code?: string }).code, 'ERR_PROTOCOL');
  assert.is(t.closedWith, err);
  assert.is(await s.closed, err);
});

test('messages other than Registered before registration are ignored', async () => {
  const { s, t } = session();
  const done = s.register(t);
  s.receive({ open: { headers: { exchangeId: 'x' } as HTTPChunk } });
  s.receive({ ping: { nonce: 1 } });
  assert.is(t.opened.length, 0);
  assert.is(t.sent.length, 1, 'only Hello');
  s.receive({ registered: REGISTERED });
  await done;
  s.abort(new AbortError('test over'));
});

test('a refusal the transport reports before Registered rejects register() with that error, unchanged', async () => {
  const { s, t } = session();
  const done = s.register(t);
  const refusal = new NameTakenError('taken');
  s.ended(refusal);
  assert.is(await done.catch((e: unknown) => e), refusal);
});

test('a transport failure before Registered becomes ERR_AGENT_UNAVAILABLE (retryable)', async () => {
  const { s, t } = session();
  const done = s.register(t);
  s.ended(new Error('ECONNRESET'));
  const err = await done.catch((e: unknown) => e);
  assert.instance(err, AgentUnavailableError);
});

test('no answer within timeoutMs rejects ERR_AGENT_UNAVAILABLE and closes the transport', async () => {
  const { s, t } = session({ timeoutMs: 20 });
  const err = await s.register(t).catch((e: unknown) => e);
  assert.instance(err, AgentUnavailableError);
  assert.is(t.closedWith, err);
});

test('an aborted signal ends the handshake with its reason', async () => {
  const { s, t } = session();
  const ac = new AbortController();
  const done = s.register(t, { signal: ac.signal });
  const reason = new AbortError('stop');
  ac.abort(reason);
  assert.is(await done.catch((e: unknown) => e), reason);
  assert.is(s.status, 'closed');
});

test('Ping is answered with Pong of the same nonce; Open asks the transport for an exchange', async () => {
  const { s, t } = await registered();
  s.receive({ ping: { nonce: 7 } });
  assert.equal(t.sent.at(-1), { pong: { nonce: 7 } });
  const head = { exchangeId: 'e1' } as HTTPChunk;
  s.receive({ open: { headers: head } });
  assert.equal(t.opened, [head]);
  s.abort(new AbortError('test over'));
});

test('Cancel aborts that exchange only; stats() counts open exchanges and the transport idle streams', async () => {
  const { s } = await registered();
  const a = fakeExchange('a');
  const b = fakeExchange('b');
  await s.serve({} as HTTPChunk, a);
  await s.serve({} as HTTPChunk, b);
  assert.equal(s.stats(), { openExchanges: 2, idleStreams: 3 });
  s.receive({ cancel: { exchangeId: 'a', code: 8 } });
  assert.is((a.aborted as { code?: string } | undefined)?.code, 'ERR_EXCHANGE_RESET');
  assert.is(b.aborted, undefined);
  await a.closed;
  await new Promise((r) => setImmediate(r));
  assert.is(s.openExchanges, 1);
  s.abort(new AbortError('test over'));
  assert.instance(b.aborted, AbortError, 'abort() aborts exchanges in flight');
});

test('leave() sends Drain and returns once the edge answers with its own Drain; onDrain hears it', async () => {
  let drains = 0;
  const { s, t } = await registered({ onDrain: () => drains++ });
  const leaving = s.leave();
  assert.equal(t.sent.at(-1), { drain: { gracePeriodMs: 0 } });
  s.receive({ drain: { gracePeriodMs: 1000 } });
  await leaving;
  assert.is(drains, 1);
  s.abort(new AbortError('test over'));
});

test('idle() resolves true once the last exchange closes, false when its timeout passes first', async () => {
  const { s } = await registered();
  const a = fakeExchange('a');
  await s.serve({} as HTTPChunk, a);
  assert.is(await s.idle({ timeoutMs: 10 }), false);
  const idle = s.idle({ timeoutMs: 5_000 });
  a.finish();
  assert.is(await idle, true);
  s.abort(new AbortError('test over'));
});

test('close({ graceMs }) leaves, waits for exchanges, then closes the transport; closed settles with ERR_ABORTED', async () => {
  const { s, t } = await registered();
  const a = fakeExchange('a');
  await s.serve({} as HTTPChunk, a);
  const closing = s.close({ graceMs: 5_000 });
  s.receive({ drain: { gracePeriodMs: 0 } });
  await new Promise((r) => setImmediate(r));
  assert.is(t.closedWith, undefined, 'still waiting for the exchange');
  a.finish();
  await closing;
  assert.is(a.aborted, undefined);
  assert.is((await s.closed as { code?: string }).code, 'ERR_ABORTED');
  assert.ok(t.closedWith);
});

test('after registration, a transport that ends makes closed settle with ERR_AGENT_UNAVAILABLE; abort() is idempotent', async () => {
  const { s, t } = await registered();
  s.ended(new Error('socket gone'));
  const reason = await s.closed;
  assert.instance(reason, AgentUnavailableError);
  s.abort(new AbortError('late'));
  assert.is(t.closedWith, reason);
});

test.run();
