import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { Heartbeat } from '../../src/actors/heartbeat.js';

const test = suite('actors/heartbeat');

/**
 * A heartbeat that pings every 50 ms; `nextPing()` resolves with the nonce of the next ping sent. (At
 * 5 ms, an event loop late by 15 ms on a loaded machine declared the peer dead before the first ping.)
 */
function pinging(): { hb: Heartbeat; nextPing: () => Promise<number>; rtts: number[] } {
  let waiter: ((nonce: number) => void) | undefined;
  const rtts: number[] = [];
  const hb = new Heartbeat({
    intervalMs: 50,
    onTick: (nonce) => waiter?.(nonce),
    onDead: () => undefined,
    onRtt: (ms) => rtts.push(ms),
  });
  // The heartbeat's timer is unref'd: the deadline also keeps the process up while a test waits.
  const nextPing = (): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error('no ping within 2 s')), 2000);
      waiter = (nonce) => {
        clearTimeout(deadline);
        resolve(nonce);
      };
    });
  return { hb, rtts, nextPing };
}

// Any Pong used to count: a peer could stay alive with pongs of its own making.
test('a pong counts only with the nonce of a ping still outstanding', async () => {
  const { hb, nextPing, rtts } = pinging();
  try {
    assert.is(hb.alive(1), false, 'no ping sent yet');
    const nonce = await nextPing();
    assert.is(hb.alive(nonce + 1), false, 'never sent');
    assert.is(hb.alive(0), false);
    assert.is(hb.alive(Number.NaN), false);
    assert.is(hb.alive(nonce), true);
    assert.is(rtts.length, 1);
    assert.is(hb.alive(nonce), false, 'replayed');
  } finally {
    hb.stop();
  }
});

test('a late answer to an older ping still counts, once', async () => {
  const { hb, nextPing } = pinging();
  try {
    const first = await nextPing();
    const second = await nextPing();
    assert.ok(second > first);
    assert.is(hb.alive(first), true);
    assert.is(hb.alive(second), true);
    assert.is(hb.alive(first), false);
  } finally {
    hb.stop();
  }
});

test('alive() without a nonce (the edge pinging the agent) always counts', () => {
  const hb = new Heartbeat({ intervalMs: 60_000, onDead: () => undefined });
  try {
    assert.is(hb.alive(), true);
    assert.is(hb.alive(), true);
  } finally {
    hb.stop();
  }
});

test.run();
