import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AgentSession } from '../../src/actors/agent-session.js';
import { MemoryRegistry } from '../../src/actors/registry.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';

const test = suite('actors/registry');
const control = { sendOpen: () => undefined, sendCancel: () => undefined, close: () => undefined };
const make = (id: string) => new AgentSession({ id, name: 'x', transport: 't', control, logger: silentLogger() });

test('a live name cannot be claimed by another session (ERR_NAME_TAKEN)', async () => {
  const reg = new MemoryRegistry();
  const a = make('a');
  const b = make('b');
  await reg.claim('demo', a);
  try {
    await reg.claim('demo', b);
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_NAME_TAKEN');
  }
  assert.is(reg.lookup('demo'), a);
  a.abort(new AbortError('x'));
  b.abort(new AbortError('x'));
  await Promise.all([a.closed, b.closed]);
});

test('a released or dead holder frees the name; release by a non-holder does nothing', async () => {
  const reg = new MemoryRegistry();
  const a = make('a');
  const b = make('b');
  await reg.claim('demo', a);
  await reg.release('demo', b);
  assert.is(reg.lookup('demo'), a);
  a.abort(new AbortError('gone'));
  await a.closed;
  assert.is(reg.lookup('demo'), undefined);
  await reg.claim('demo', b);
  assert.is(reg.lookup('demo'), b);
  await reg.release('demo', b);
  assert.is(reg.lookup('demo'), undefined);
  b.abort(new AbortError('x'));
  await b.closed;
});

test.run();
