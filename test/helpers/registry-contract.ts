import * as assert from 'uvu/assert';
import { AgentSession } from '../../src/actors/agent-session.js';
import type { Registry } from '../../src/actors/registry.js';
import { AbortError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { FakeControlChannel } from './fake-control-channel.js';
import { within } from './harness.js';
import { suite } from './suite.js';

/** Two edges' registries over one shared store (for the in-memory registry: the same one twice). */
export interface RegistryPair {
  a: Registry;
  b: Registry;
  /** The fencing epoch under which `reg` holds `key`; absent for a registry without leases. */
  heldEpoch?: (reg: Registry, key: string) => number | undefined;
  close(): Promise<void>;
}

/** Reconnect grace every pair is built with, ms. */
export const CONTRACT_GRACE_MS = 5_000;

const expectCode = async (p: Promise<unknown>, code: string, what: string): Promise<void> => {
  try {
    await p;
    assert.unreachable(what);
  } catch (err) {
    assert.is((err as { code?: string }).code, code, what);
  }
};

/**
 * The registry's name rules, as one edge has always had them, checked across two edges: every
 * implementation of Registry passes the same cases (MemoryRegistry, ClusterRegistry on Redis).
 */
export function registryContract(name: string, makePair: () => Promise<RegistryPair>, done?: () => Promise<void>): void {
  const test = suite<{ pair?: RegistryPair; sessions: AgentSession[] }>(`registry contract: ${name}`, { sessions: [] });
  const session = (ctx: { sessions: AgentSession[] }, id: string, key = 'demo'): AgentSession => {
    const s = new AgentSession({ id, name: key, channel: new FakeControlChannel(), logger: silentLogger() });
    ctx.sessions.push(s);
    return s;
  };
  test.before.each(async (ctx) => {
    ctx.sessions = [];
    ctx.pair = await makePair();
  });
  test.after.each(async (ctx) => {
    for (const s of ctx.sessions) s.abort(new AbortError('test over'));
    await Promise.all(ctx.sessions.map((s) => s.closed));
    await ctx.pair?.close();
  });
  if (done) test.after(done);

  test('a claimed name is served on its edge; another owner is refused on both edges (ERR_NAME_TAKEN)', async (ctx) => {
    const { a, b } = ctx.pair!;
    const mine = session(ctx, 'mine');
    await a.claim('demo', mine, { owner: 'sha256:t' });
    assert.is(a.lookup('demo'), mine);
    for (const [reg, owner] of [[a, 'sha256:u'], [b, 'sha256:u'], [b, '']] as const) {
      await expectCode(reg.claim('demo', session(ctx, `x${owner}`), { owner }), 'ERR_NAME_TAKEN', `owner "${owner}" refused`);
    }
    assert.is(a.lookup('demo'), mine);
  });

  test('sessions of the same token form one pool across edges', async (ctx) => {
    const { a, b, heldEpoch } = ctx.pair!;
    const [s1, s2] = [session(ctx, 's1'), session(ctx, 's2')];
    await a.claim('demo', s1, { owner: 'sha256:t' });
    await b.claim('demo', s2, { owner: 'sha256:t' });
    assert.ok(a.lookup('demo') === s1 || a.lookup('demo') === s2);
    if (heldEpoch) {
      assert.is(a.lookup('demo'), s1);
      assert.is(b.lookup('demo'), s2);
      assert.ok(heldEpoch(a, 'demo')! > 0 && heldEpoch(b, 'demo')! > 0);
    }
    assert.not.ok(s1.stopped || s2.stopped);
  });

  test('a lost agent keeps its name cluster-wide for the grace period: its token gets it back on the other edge', async (ctx) => {
    const { a, b } = ctx.pair!;
    const [gone, thief, back] = [session(ctx, 'gone'), session(ctx, 'thief'), session(ctx, 'back')];
    await a.claim('demo', gone, { owner: 'sha256:t' });
    await a.release('demo', gone, { reconnecting: true });
    await expectCode(b.claim('demo', thief, { owner: 'sha256:u' }), 'ERR_NAME_TAKEN', 'another token in the grace period');
    await b.claim('demo', back, { owner: 'sha256:t' });
    assert.is(b.lookup('demo'), back);
  });

  test('the same agent reconnecting through the other edge takes its name over at once; its old session ends', async (ctx) => {
    const { a, b, heldEpoch } = ctx.pair!;
    const [old, fresh] = [session(ctx, 'old'), session(ctx, 'fresh')];
    await a.claim('demo', old, { owner: '', secret: 's3cret' });
    const before = heldEpoch?.(a, 'demo');
    // The open edge: the session id alone is no credential.
    await expectCode(b.claim('demo', session(ctx, 'thief'), { owner: '', resume: 'old', resumeSecret: 'wrong', secret: 'x' }), 'ERR_NAME_TAKEN', 'a wrong secret');
    await b.claim('demo', fresh, { owner: '', resume: 'old', resumeSecret: 's3cret', secret: 'next' });
    assert.is(b.lookup('demo'), fresh);
    await within(old.closed, 10_000, 'the replaced session to end');
    if (heldEpoch) {
      assert.ok(heldEpoch(b, 'demo')! > before!, 'the epoch is bumped');
      assert.is(heldEpoch(a, 'demo'), undefined, 'the loser holds no epoch');
      assert.is(a.lookup('demo'), undefined);
    }
  });

  test('a released name is free for anyone on either edge; release by a non-member does nothing', async (ctx) => {
    const { a, b } = ctx.pair!;
    const [s1, s2, other] = [session(ctx, 's1'), session(ctx, 's2'), session(ctx, 'other')];
    await a.claim('demo', s1, { owner: 'sha256:t' });
    await a.release('demo', other, { reconnecting: false });
    assert.is(a.lookup('demo'), s1);
    await a.release('demo', s1, { reconnecting: false });
    assert.is(a.lookup('demo'), undefined);
    await b.claim('demo', s2, { owner: 'sha256:u' });
    assert.is(b.lookup('demo'), s2);
  });

  test('ports are keys like names: tcp:PORT of another owner is refused on the other edge', async (ctx) => {
    const { a, b } = ctx.pair!;
    await a.claim('tcp:20005', session(ctx, 'p1', 'tcp:20005'), { owner: 'sha256:t' });
    await expectCode(b.claim('tcp:20005', session(ctx, 'p2', 'tcp:20005'), { owner: 'sha256:u' }), 'ERR_NAME_TAKEN', 'another owner of the port');
    await b.claim('udp:20005', session(ctx, 'p3', 'udp:20005'), { owner: 'sha256:u' });
  });

  test.run();
}
