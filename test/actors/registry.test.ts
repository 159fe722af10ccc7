import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { AgentSession } from '../../src/actors/agent-session.js';
import { MemoryRegistry } from '../../src/actors/registry.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { waitFor } from '../helpers/harness.js';
import { FakeControlChannel } from '../helpers/fake-control-channel.js';

const test = suite('actors/registry');
const make = (id: string) => new AgentSession({ id, name: 'x', channel: new FakeControlChannel(), logger: silentLogger() });
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
  // Draining is a state of the session, changed by its own loop.
  await waitFor(() => b.draining, 5000, 'b to drain');
  assert.is(reg.lookup('demo'), a);
  await stop(a, b);
});

test('a reconnecting agent resumes its old session at once with its resume secret', async () => {
  const reg = new MemoryRegistry();
  const [old, fresh] = [make('old'), make('fresh')];
  await reg.claim('demo', old, { owner: '', secret: 's3cret' });
  await reg.claim('demo', fresh, { owner: '', resume: 'old', resumeSecret: 's3cret', secret: 'next' });
  assert.is(reg.lookup('demo'), fresh);
  await old.closed;
  await stop(fresh);
});

// On an open edge the session id was enough to kick a live agent off its name and take the name over;
// the id is sent in clear on every ForwardHTTP and was logged, so it is no credential.
test('open edge: the session id alone, or with a wrong secret, cannot replace a live session (ERR_NAME_TAKEN)', async () => {
  const reg = new MemoryRegistry();
  const [live, thief] = [make('live'), make('thief')];
  await reg.claim('demo', live, { owner: '', secret: 'right' });
  for (const resumeSecret of [undefined, '', 'wrong', 'righ']) {
    try {
      await reg.claim('demo', thief, { owner: '', resume: 'live', resumeSecret, secret: 'x' });
      assert.unreachable('took over without the secret');
    } catch (err) {
      assert.is((err as { code: string }).code, 'ERR_NAME_TAKEN');
    }
  }
  assert.is(reg.lookup('demo'), live);
  assert.not.ok(live.stopped);
  await stop(live, thief);
});

test('with tokens the owner proves a resume (the token is the credential)', async () => {
  const reg = new MemoryRegistry();
  const [old, fresh, other] = [make('old'), make('fresh'), make('other')];
  await reg.claim('demo', old, { owner: 'sha256:t', secret: 'a' });
  try {
    await reg.claim('demo', other, { owner: 'sha256:u', resume: 'old', resumeSecret: 'a' });
    assert.unreachable('another token resumed');
  } catch (err) {
    assert.is((err as { code: string }).code, 'ERR_NAME_TAKEN');
  }
  await reg.claim('demo', fresh, { owner: 'sha256:t', resume: 'old' });
  await old.closed;
  assert.is(reg.lookup('demo'), fresh);
  await stop(fresh, other);
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
