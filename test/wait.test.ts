import { EventEmitter } from 'node:events';
import * as assert from 'uvu/assert';
import { deadline, waitForEvent } from '../src/wait.js';
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

test.run();
