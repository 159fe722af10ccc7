import * as assert from 'uvu/assert';
import { Outbox } from '../../src/actors/outbox.js';
import type { EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { TransportClosedError } from '../../src/errors.js';
import { suite } from '../helpers/suite.js';

const test = suite('actors/outbox');
const ping = (nonce: number): EdgeMessage => ({ ping: { nonce } });

test('each message waits until the transport took the previous one', async () => {
  const sent: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const outbox = new Outbox(async (msg) => {
    sent.push(msg.ping!.nonce);
    if (sent.length === 1) await gate;
  }, () => assert.unreachable());
  outbox.post(ping(1));
  outbox.post(ping(2));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(sent, [1]);
  assert.is(outbox.size, 1);
  release();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(sent, [1, 2]);
});

test('post() beyond capacity throws ERR_MAILBOX_FULL (a bound, not a growing queue)', () => {
  const outbox = new Outbox(() => new Promise<void>(() => undefined), () => undefined, 2);
  outbox.post(ping(1)); // taken by the transport, never finishes
  outbox.post(ping(2));
  outbox.post(ping(3));
  try {
    outbox.post(ping(4));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_MAILBOX_FULL');
  }
});

test('a send that fails stops the outbox and reports once; later posts are dropped', async () => {
  const errors: Error[] = [];
  let calls = 0;
  const outbox = new Outbox(async () => {
    calls++;
    throw new TransportClosedError('gone');
  }, (err) => errors.push(err));
  outbox.post(ping(1));
  outbox.post(ping(2));
  await new Promise((r) => setTimeout(r, 10));
  outbox.post(ping(3));
  assert.is(calls, 1);
  assert.equal(errors.map((e) => (e as { code?: string }).code), ['ERR_TRANSPORT_CLOSED']);
});

test('the sent callback runs once the transport took the message', async () => {
  const outbox = new Outbox(async () => undefined, () => undefined);
  await new Promise<void>((resolve) => outbox.post(ping(1), resolve));
});

test.run();
