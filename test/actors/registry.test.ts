import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { AgentSession } from '../../src/actors/agent-session.js';
import { MemoryRegistry } from '../../src/actors/registry.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';

const test = suite('actors/registry');
const control = { sendOpen: () => undefined, sendCancel: () => undefined, close: () => undefined };
const make = (id: string) => new AgentSession({ id, name: 'x', transport: 't', control, logger: silentLogger() });
const open = { owner: '' };
const gone = { reconnecting: false };

async function stop(...sessions: AgentSession[]): Promise<void> {
  for (const s of sessions) s.abort(new AbortError('test over'));
  await Promise.all(sessions.map((s) => s.closed));
}

test('a live name cannot be claimed by another session (ERR_NAME_TAKEN), open or another token', async () => {
  const reg = new MemoryRegistry();
  const [a, b, c] = [make('a'), make('b'), make('c')];
  await reg.claim('demo', a, open);
  for (const [s, owner] of [[b, ''], [c, 'sha256:other']] as const) {
    try {
      await reg.claim('demo', s, { owner });
      assert.unreachable();
    } catch (err) {
      assert.is((err as { code: string }).code, 'ERR_NAME_TAKEN');
    }
  }
  assert.is(reg.lookup('demo'), a);
  await stop(a, b, c);
});

test('sessions of the same token form a pool; lookup picks the least loaded, skipping draining ones', async () => {
  const reg = new MemoryRegistry();
  const [a, b] = [make('a'), make('b')];
  await reg.claim('demo', a, { owner: 'sha256:t' });
  await reg.claim('demo', b, { owner: 'sha256:t' });
  Object.defineProperty(a, 'load', { value: 3 });
  Object.defineProperty(b, 'load', { value: 1 });
  assert.is(reg.lookup('demo'), b);
  b.drain();
  assert.is(reg.lookup('demo'), a);
  await stop(a, b);
});

test('a reconnecting agent resumes its old session at once', async () => {
  const reg = new MemoryRegistry();
  const [old, fresh] = [make('old'), make('fresh')];
  await reg.claim('demo', old, open);
  await reg.claim('demo', fresh, { owner: '', resume: 'old' });
  assert.is(reg.lookup('demo'), fresh);
  await old.closed;
  await stop(fresh);
});

test('a lost agent keeps its name for the grace period; waiting requests get the returning session', async () => {
  const reg = new MemoryRegistry(5_000);
  const [a, b, c] = [make('a'), make('b'), make('c')];
  await reg.claim('demo', a, { owner: 'sha256:t' });
  await reg.release('demo', a, { reconnecting: true });
  assert.is(reg.lookup('demo'), undefined);
  const waiting = reg.waitFor('demo', 5_000);
  try {
    await reg.claim('demo', c, { owner: 'sha256:someone-else' });
    assert.unreachable('another owner took a name in its grace period');
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_NAME_TAKEN');
  }
  await reg.claim('demo', b, { owner: 'sha256:t' });
  assert.is(await waiting, b);
  await stop(a, b, c);
});

test('a released name is free; release by a non-member does nothing; no grace without reconnecting', async () => {
  const reg = new MemoryRegistry(5_000);
  const [a, b] = [make('a'), make('b')];
  await reg.claim('demo', a, open);
  await reg.release('demo', b, gone);
  assert.is(reg.lookup('demo'), a);
  await reg.release('demo', a, gone);
  assert.is(await reg.waitFor('demo', 1000), undefined);
  await reg.claim('demo', b, { owner: 'sha256:x' });
  assert.is(reg.lookup('demo'), b);
  await stop(a, b);
});

test.run();
