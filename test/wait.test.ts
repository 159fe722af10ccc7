import { EventEmitter } from 'node:events';
import * as assert from 'uvu/assert';
import { deadline, waitForEvent, waitUntil } from '../src/wait.js';
import { suite } from './helpers/suite.js';

const test = suite('wait');

test('waitForEvent() resolves with the arguments of the next event and leaves no listener', async () => {
  const e = new EventEmitter();
  const got = waitForEvent(e, 'ready', { timeoutMs: 1_000 });
  e.emit('ready', 1, 'two');
  assert.equal(await got, [1, 'two']);
  assert.is(e.listenerCount('ready'), 0);
  assert.is(e.listenerCount('error'), 0);
});

test('waitForEvent() rejects with the emitter\'s error event', async () => {
  const e = new EventEmitter();
  const got = waitForEvent(e, 'ready');
  e.emit('error', new Error('boom'));
  try {
    await got;
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, 'boom');
  }
});

test('waitForEvent() rejects with the signal\'s reason, before and during the wait', async () => {
  const e = new EventEmitter();
  const reason = new Error('stop');
  const ac = new AbortController();
  const got = waitForEvent(e, 'ready', { signal: ac.signal });
  ac.abort(reason);
  try {
    await got;
    assert.unreachable();
  } catch (err) {
    assert.is(err, reason);
  }
  try {
    await waitForEvent(e, 'ready', { signal: ac.signal });
    assert.unreachable();
  } catch (err) {
    assert.is(err, reason);
  }
  assert.is(e.listenerCount('ready'), 0);
});

test('waitForEvent() rejects with ERR_WAIT_TIMEOUT (or the given error) when the event does not come', async () => {
  const e = new EventEmitter();
  try {
    await waitForEvent(e, 'ready', { timeoutMs: 10 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_WAIT_TIMEOUT');
  }
  const mine = new Error('late');
  try {
    await waitForEvent(e, 'ready', { timeoutMs: 10, timeoutError: mine });
    assert.unreachable();
  } catch (err) {
    assert.is(err, mine);
  }
  assert.is(e.listenerCount('ready'), 0);
});

test('deadline() rejects with its error after ms, or with the reason once its signal aborts', async () => {
  const late = new Error('late');
  try {
    await deadline(5, late);
    assert.unreachable();
  } catch (err) {
    assert.is(err, late);
  }
  const ac = new AbortController();
  const d = deadline(60_000, late, { signal: ac.signal });
  const done = new Error('done');
  ac.abort(done);
  try {
    await d;
    assert.unreachable();
  } catch (err) {
    assert.is(err, done);
  }
});

test('waitUntil resolves true at once when the condition holds, without listening', async () => {
  const e = new EventEmitter();
  assert.is(await waitUntil(e, 'x', () => true), true);
  assert.is(e.listenerCount('x'), 0);
});

test('waitUntil resolves true on the event after which the condition holds, and removes its listener', async () => {
  const e = new EventEmitter();
  let n = 0;
  const waiting = waitUntil(e, 'x', () => n >= 2, { timeoutMs: 5_000 });
  n = 1;
  e.emit('x');
  n = 2;
  e.emit('x');
  assert.is(await waiting, true);
  assert.is(e.listenerCount('x'), 0);
});

test('waitUntil resolves false when timeoutMs passes first', async () => {
  const e = new EventEmitter();
  assert.is(await waitUntil(e, 'x', () => false, { timeoutMs: 5 }), false);
  assert.is(e.listenerCount('x'), 0);
});

test('waitUntil rejects with the signal reason on abort, and at once for an aborted signal', async () => {
  const e = new EventEmitter();
  const ac = new AbortController();
  const waiting = waitUntil(e, 'x', () => false, { signal: ac.signal });
  const reason = new Error('stop');
  ac.abort(reason);
  assert.is(await waiting.catch((err: unknown) => err), reason);
  assert.is(e.listenerCount('x'), 0);
  assert.is(await waitUntil(e, 'x', () => true, { signal: ac.signal }).catch((err: unknown) => err), reason);
});

test.run();
