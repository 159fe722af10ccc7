import { EventEmitter } from 'node:events';
import * as assert from 'uvu/assert';
import { waitUntil } from '../src/wait.js';
import { suite } from './helpers/suite.js';

const test = suite('wait');

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
