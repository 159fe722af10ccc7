import * as assert from 'uvu/assert';
import type { AgentSession } from '../../src/actors/agent-session.js';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import type { AdmitOptions, Admitted } from '../../src/edge/agent-admission.js';
import { EdgeSessionProtocol, type EdgeSessionProtocolInit } from '../../src/edge/edge-session-protocol.js';
import { AbortError, NameTakenError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { FakeControlChannel } from '../helpers/fake-control-channel.js';
import { waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

// The session protocol is tested once, here, over a fake control channel; the gRPC and WebSocket
// adapters only move its messages (their own suites test the framing).
const test = suite('edge/edge-session-protocol');

const hello = (name = 'demo') => ({ hello: { name, version: 'test', window: 1 << 20 } });
const head = (id: string): HTTPChunk => ({ kind: ChunkKind.HEADERS, exchangeId: id, method: 'GET', target: '/', headers: [] });
const codeOf = (err: Error | undefined): string | undefined => (err as { code?: string } | undefined)?.code;

type Admit = (session: AgentSession, options: AdmitOptions) => Promise<Admitted>;
const admitAll: Admit = async () => ({ owner: '', resumeSecret: 'secret' });

function protocol(admit: Admit = admitAll, init: Partial<EdgeSessionProtocolInit> = {}): EdgeSessionProtocol {
  return new EdgeSessionProtocol({
    admission: { admit, pickName: () => 'picked' },
    logger: silentLogger(),
    publicUrl: (name) => `http://${name}.localhost:8080`,
    pingIntervalMs: 60_000,
    gracePeriodMs: 1234,
    ...init,
  });
}

async function registered(channel = new FakeControlChannel(), init: Partial<EdgeSessionProtocolInit> = {}): Promise<AgentSession> {
  channel.push(hello());
  const session = await protocol(admitAll, init).accept(channel);
  assert.ok(session);
  await waitFor(() => session!.status === 'registered', 5000, 'registered');
  return session!;
}

async function end(session: AgentSession | undefined): Promise<void> {
  session?.abort(new AbortError('test over'));
  await session?.closed;
}

test('a valid Hello, admitted: Registered goes out first and the session is registered', async () => {
  const channel = new FakeControlChannel();
  const session = await registered(channel);
  assert.equal(channel.kinds, ['registered']);
  const r = channel.sent[0].registered!;
  assert.equal([r.name, r.url, r.sessionId, r.resumeSecret], ['demo', 'http://demo.localhost:8080', session.id, 'secret']);
  assert.is(session.transport, 'fake');
  await end(session);
});

test('no Hello in time: the channel is closed with ERR_BAD_HELLO and no session is made', async () => {
  const channel = new FakeControlChannel();
  let admitted = 0;
  const s = await protocol(async (...a) => (admitted++, admitAll(...a)), { helloTimeoutMs: 20 }).accept(channel);
  assert.is(s, undefined);
  assert.is(codeOf(channel.closedWith), 'ERR_BAD_HELLO');
  assert.is(admitted, 0);
});

for (const [what, first] of [
  ['a first message that is not a Hello', { pong: { nonce: 1 } }],
  ['an invalid tunnel name', hello('Not A Name')],
] as const) {
  test(`${what} is refused with ERR_BAD_HELLO before admission`, async () => {
    const channel = new FakeControlChannel();
    channel.push(first);
    let admitted = 0;
    assert.is(await protocol(async (...a) => (admitted++, admitAll(...a))).accept(channel), undefined);
    assert.is(codeOf(channel.closedWith), 'ERR_BAD_HELLO');
    assert.is(admitted, 0);
  });
}

test('a transport check of the Hello (the WebSocket window) refuses it the same way', async () => {
  const channel = new FakeControlChannel();
  channel.push(hello());
  const s = await protocol().accept(channel, {
    checkHello: () => {
      throw new Error('window too small');
    },
  });
  assert.is(s, undefined);
  assert.is(codeOf(channel.closedWith), 'ERR_BAD_HELLO');
});

test('a refusal by admission closes the channel with that error (the adapter maps it), and the session with it', async () => {
  const channel = new FakeControlChannel();
  channel.push(hello());
  let made: AgentSession | undefined;
  const s = await protocol(async (session) => {
    made = session;
    throw new NameTakenError('in use');
  }).accept(channel);
  assert.is(s, undefined);
  assert.is(codeOf(channel.closedWith), 'ERR_NAME_TAKEN');
  await made!.closed;
  assert.is(made!.status, 'closed');
  assert.equal(channel.sent, []);
});

// A connection that closed while its admission ran left a registered session nothing would close.
test('a channel that closes during admission leaves the session closed, never registered', async () => {
  const channel = new FakeControlChannel();
  channel.push(hello());
  let made: AgentSession | undefined;
  const s = await protocol(async (session) => {
    made = session;
    channel.close(new AbortError('agent left'));
    return admitAll(session, {});
  }).accept(channel);
  assert.is(s, undefined);
  await made!.closed;
  assert.equal(channel.sent, []);
});

test('exchanges asked for before Registered has left wait for it: nothing overtakes Registered', async () => {
  const channel = new FakeControlChannel();
  channel.hold();
  channel.push(hello());
  const session = (await protocol().accept(channel))!;
  const opening = session.openExchange(head('early')).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(channel.sent, [], 'the transport took nothing yet');
  channel.release();
  await waitFor(() => channel.opens.length === 1, 5000, 'the Open');
  assert.equal(channel.kinds, ['registered', 'open']);
  await end(session);
  await opening;
});

test('Drain from the agent or the edge: draining, the notice (with the grace period) goes out once, then a session with no exchange left ends', async () => {
  for (const from of ['agent', 'edge'] as const) {
    const channel = new FakeControlChannel();
    const session = await registered(channel);
    if (from === 'agent') channel.push({ drain: { gracePeriodMs: 0 } });
    else session.drain();
    await waitFor(() => session.draining, 5000, 'draining');
    session.drain();
    await waitFor(() => channel.kinds.includes('drain'), 5000, 'the notice');
    assert.equal(channel.kinds, ['registered', 'drain']);
    assert.is(channel.sent[1].drain!.gracePeriodMs, 1234);
    // Nothing in flight: the session ends itself once its notice is out (the agent may go).
    await session.closed;
    assert.is(session.status, 'closed');
    assert.is((session.error as { code?: string }).code, 'ERR_SESSION_DRAINED');
    await end(session);
  }
});

test('pings go out every interval; a Pong with its nonce is a round trip', async () => {
  const channel = new FakeControlChannel();
  const rtts: number[] = [];
  const session = await registered(channel, { pingIntervalMs: 20, onPingRtt: (ms) => rtts.push(ms) });
  await waitFor(() => channel.kinds.includes('ping'), 5000, 'a ping');
  channel.push({ pong: { nonce: channel.sent.find((m) => m.ping)!.ping!.nonce } });
  await waitFor(() => rtts.length === 1, 5000, 'the round trip');
  await end(session);
});

test('a silent agent is declared dead after its missed pings: the session closes', async () => {
  const session = await registered(new FakeControlChannel(), { pingIntervalMs: 10 });
  await session.closed;
  assert.is(codeOf(session.error), 'ERR_AGENT_UNAVAILABLE');
});

test('a second Hello breaks the protocol: the channel closes with ERR_PROTOCOL', async () => {
  const channel = new FakeControlChannel();
  const session = await registered(channel);
  channel.push(hello('other'));
  await session.closed;
  assert.is(codeOf(channel.closedWith), 'ERR_PROTOCOL');
});

test('the agent ending its control stream ends the session; the channel is closed as going away', async () => {
  const channel = new FakeControlChannel();
  const session = await registered(channel);
  channel.end();
  await session.closed;
  assert.is(session.status, 'closed');
  assert.is(codeOf(channel.closedWith), 'ERR_AGENT_UNAVAILABLE');
});

test.run();
