import * as assert from 'uvu/assert';
import {
  GC_BUDGET_BULK_BYTES,
  GC_BUDGET_BURST_MINORS,
  GC_BUDGET_CHECK_MS,
  GC_BUDGET_FLOOR_WINDOW_MS,
  GC_BUDGET_MAJOR_INTERVAL_MS,
  GC_BUDGET_MINOR_INTERVAL_MS,
  GC_BUDGET_NOTE_BYTES,
  GC_BUDGET_OLD_BYTES,
  GC_BUDGET_QUIET_AFTER_MS,
  GC_BUDGET_QUIET_CHECK_MS,
  GC_BUDGET_YOUNG_BYTES,
  GcBudget,
  type GcKind,
} from '../src/gc-budget.js';
import { suite } from './helpers/suite.js';

const MIB = 1024 * 1024;
const test = suite('gc-budget');

/**
 * The policy on a simulated process: `external` is what V8 would report, `collect` applies what the
 * simulated collector frees (young garbage on a scavenge, all garbage on a full collection).
 */
function simulated() {
  const s = { now: 0, live: 2 * MIB, young: 0, old: 0, heap: 10 * MIB };
  const collect = (kind: GcKind): void => {
    if (kind === 'major') s.old = 0;
    s.young = 0;
    s.heap = 10 * MIB;
  };
  const budget = new GcBudget({
    read: () => ({ external: s.live + s.young + s.old, heapUsed: (s.heap += 1024) }),
    now: () => s.now,
    collect,
  });
  const tick = (): number => {
    const next = budget.check();
    s.now += next;
    return next;
  };
  return { s, budget, tick, collect };
}

test('garbage that dies young is collected by scavenges once it grew by the young bound, never a full collection', () => {
  const { s, budget, tick } = simulated();
  let peak = 0;
  // Slow readers: 0.2 MiB of fresh buffers per 5 ms check (40 MB/s) for 20 s, all dead at once.
  for (let i = 0; i < 4_000; i++) {
    s.young += 0.2 * MIB;
    peak = Math.max(peak, s.young);
    tick();
  }
  // The bound, plus what arrives in the check that finds it and the one that takes the new low.
  assert.ok(peak <= GC_BUDGET_YOUNG_BYTES + 2 * 0.2 * MIB, `garbage peaked at ${peak / MIB} MiB`);
  assert.is(budget.requested.major, 0);
  // One scavenge per young bound's worth of garbage, not one per check.
  assert.ok(budget.requested.minor <= (4_000 * 0.2 * MIB) / GC_BUDGET_YOUNG_BYTES, `${budget.requested.minor} scavenges`);
  assert.ok(budget.requested.minor >= 150);
});

test('a bulk transfer that V8 scavenges by itself every 10 MiB gets no scavenge of ours, and ours are spaced when it does not', () => {
  const { s, budget, tick, collect } = simulated();
  // 2.5 MiB per check (500 MB/s); V8 collects every 4th check.
  for (let i = 0; i < 2_000; i++) {
    s.young += 2.5 * MIB;
    if (i % 4 === 3) collect('minor');
    tick();
  }
  // At the start, before V8's own collections take over: at most the burst's unspaced few, none after.
  assert.ok(budget.requested.minor <= GC_BUDGET_BURST_MINORS, `${budget.requested.minor} scavenges`);
  assert.is(budget.requested.major, 0);
  // The same transfer with V8 idle: the burst's first few unspaced, then one per GC_BUDGET_BULK_BYTES
  // of garbage (it grows faster than the young bound per interval), never more.
  let peak = 0;
  for (let t = 0; t < 10_000; ) {
    s.young += 2.5 * MIB;
    peak = Math.max(peak, s.young);
    t += tick();
  }
  const grown = (10_000 / GC_BUDGET_CHECK_MS) * 2.5 * MIB;
  assert.ok(budget.requested.minor <= grown / GC_BUDGET_BULK_BYTES + GC_BUDGET_BURST_MINORS, `${budget.requested.minor} scavenges in 10 s`);
  assert.ok(budget.requested.minor >= grown / (GC_BUDGET_BULK_BYTES + 2 * 2.5 * MIB));
  assert.ok(peak <= GC_BUDGET_BULK_BYTES + 2 * 2.5 * MIB, `garbage peaked at ${peak / MIB} MiB`);
});

test("V8's own scavenge every 32 MiB of young buffers: ours halve the peak, one per GC_BUDGET_BULK_BYTES", () => {
  const { s, budget, collect } = simulated();
  // A download at ≈ 500 MB/s seen from the data path: every MiB of body is 2 MiB of fresh buffers (the
  // socket read and the frame gathered from it). V8 scavenges by itself once they reach 32 MiB.
  let peak = 0;
  let v8 = 0;
  for (let i = 0; i < 1024; i++) {
    s.now += 2;
    s.young += 2 * GC_BUDGET_NOTE_BYTES;
    if (s.young >= 32 * MIB) (collect('minor'), v8++);
    peak = Math.max(peak, s.young);
    budget.note(GC_BUDGET_NOTE_BYTES);
  }
  assert.is(v8, 0, 'V8 never reached its own trigger');
  assert.ok(peak <= GC_BUDGET_BULK_BYTES + 2 * 2 * GC_BUDGET_NOTE_BYTES, `garbage peaked at ${peak / MIB} MiB`);
  assert.ok(budget.requested.minor <= (2 * 1024 * MIB) / GC_BUDGET_BULK_BYTES + GC_BUDGET_BURST_MINORS, `${budget.requested.minor} scavenges`);
  assert.is(budget.requested.major, 0);
});

test('buffers that stay alive cost one scavenge per young bound while they grow, and nothing once they stop', () => {
  const { s, budget, tick } = simulated();
  // 32 slow readers filling their windows: live external memory rises to 150 MiB, then holds.
  let elapsed = 0;
  while (s.live < 150 * MIB) {
    s.live += 0.25 * MIB;
    elapsed += tick();
  }
  const { minor, major } = budget.requested;
  assert.ok(minor <= 150 / (GC_BUDGET_YOUNG_BYTES / MIB), `${minor} scavenges while 150 MiB became live`);
  assert.ok(major <= Math.ceil(elapsed / GC_BUDGET_MAJOR_INTERVAL_MS), `${major} full collections in ${elapsed} ms`);
  for (let t = 0; t < 10_000; ) t += tick();
  assert.equal(budget.requested, { minor, major });
});

test('promoted garbage a scavenge cannot free brings a full collection, at most one per interval', () => {
  const { s, budget, tick } = simulated();
  let elapsed = 0;
  let peakOld = 0;
  // A slow reader: its chunks are promoted before they die; 1 MiB of such garbage per 20 ms.
  while (elapsed < 10_000) {
    s.old += (MIB * GC_BUDGET_CHECK_MS) / 20;
    peakOld = Math.max(peakOld, s.old);
    elapsed += tick();
  }
  assert.ok(budget.requested.major >= 1, 'a full collection was requested');
  assert.ok(budget.requested.major <= Math.ceil(10_000 / GC_BUDGET_MAJOR_INTERVAL_MS), `${budget.requested.major} full collections in 10 s`);
  // What it cost: the old garbage never grew past the old bound plus what accumulates in the windows around it.
  assert.ok(peakOld <= GC_BUDGET_OLD_BYTES + 2 * (GC_BUDGET_FLOOR_WINDOW_MS / 20) * MIB, `old garbage peaked at ${peakOld / MIB} MiB`);
});

test('promoted garbage brings a full collection even while V8 scavenges by itself and no scavenge of ours is due', () => {
  const { s, budget, tick, collect } = simulated();
  // 32 slow readers: V8 scavenges by itself every 100 ms (young garbage never reaches the young bound),
  // while their opening burst's promoted buffers, 75 MiB, wait for a full collection.
  for (let t = 0; t < 1_000; ) t += tick();
  s.old = 75 * MIB;
  let elapsed = 0;
  let sinceV8 = 0;
  while (elapsed < 4_000 && budget.requested.major === 0) {
    s.young += 0.15 * MIB;
    const step = tick();
    elapsed += step;
    sinceV8 += step;
    if (sinceV8 >= 100) (collect('minor'), (sinceV8 = 0));
  }
  assert.is(budget.requested.major, 1, 'a full collection was requested');
  // The jump itself was due a scavenge (75 MiB over the low); none after it.
  assert.ok(budget.requested.minor <= 1, `${budget.requested.minor} scavenges`);
  // Within two floor windows: the one that sees the garbage and the one after.
  assert.ok(elapsed <= 2 * GC_BUDGET_FLOOR_WINDOW_MS + GC_BUDGET_QUIET_CHECK_MS, `after ${elapsed} ms`);
  assert.is(s.old, 0);
});

test('the burst that opens a transfer gets its first scavenges unspaced, again after the process stood still', () => {
  const { s, budget, tick } = simulated();
  const burst = (): number => {
    const before = budget.requested.minor;
    // 30 MiB in 100 ms (the opening burst of a slow reader), all of it dead at once.
    for (let t = 0; t < 100; ) {
      s.young += 1.5 * MIB;
      t += tick();
    }
    return budget.requested.minor - before;
  };
  // Spaced by GC_BUDGET_MINOR_INTERVAL_MS alone, 100 ms would allow one.
  assert.is(burst(), GC_BUDGET_BURST_MINORS);
  // Still moving: the allowance is spent, the spacing applies (and the bulk bound, which 30 MiB can reach once).
  assert.ok(burst() <= 100 / GC_BUDGET_MINOR_INTERVAL_MS + 1 + Math.floor((30 * MIB) / GC_BUDGET_BULK_BYTES));
  for (let waited = 0; waited <= GC_BUDGET_QUIET_AFTER_MS + GC_BUDGET_QUIET_CHECK_MS; ) waited += tick();
  assert.is(burst(), GC_BUDGET_BURST_MINORS);
  assert.is(budget.requested.major, 0);
});

test('body bytes noted by exchanges bring a look between two timer checks, one per GC_BUDGET_NOTE_BYTES', () => {
  const { s, budget } = simulated();
  let reads = 0;
  const read = (budget as unknown as { init: { read: () => unknown } }).init.read;
  (budget as unknown as { init: { read: () => unknown } }).init.read = () => (reads++, read());
  budget.note(GC_BUDGET_NOTE_BYTES - 1);
  assert.is(reads, 0);
  budget.note(1);
  assert.is(reads, 1);
  // The quiet timer does not run: a burst of 16 MiB at ≈ 350 MB/s, dead at once, seen from the data path alone.
  let peak = 0;
  for (let i = 0; i < 16; i++) {
    s.now += 3;
    s.young += GC_BUDGET_NOTE_BYTES;
    peak = Math.max(peak, s.young);
    budget.note(GC_BUDGET_NOTE_BYTES);
  }
  // One look per MiB, and one more after each collection (V8's heap, read back).
  assert.is(reads, 17 + budget.requested.minor);
  assert.ok(budget.requested.minor >= 2, `${budget.requested.minor} scavenges`);
  // The bound, plus what arrives before the look that finds it and the one that takes the new low.
  assert.ok(peak <= GC_BUDGET_YOUNG_BYTES + 2 * GC_BUDGET_NOTE_BYTES, `garbage peaked at ${peak / MIB} MiB`);
});

test('checks slow down once external memory is still or V8 collects by itself, and speed up when it moves', () => {
  const { s, tick, collect } = simulated();
  assert.is(tick(), GC_BUDGET_CHECK_MS);
  let next = 0;
  for (let waited = 0; waited <= GC_BUDGET_QUIET_AFTER_MS; waited += next) next = tick();
  assert.is(tick(), GC_BUDGET_QUIET_CHECK_MS);
  s.young += MIB;
  assert.is(tick(), GC_BUDGET_CHECK_MS);
  // V8 collected by itself since the last check: no fast check while it does.
  collect('minor');
  s.young += MIB;
  assert.is(tick(), GC_BUDGET_QUIET_CHECK_MS);
  s.young += MIB;
  assert.is(tick(), GC_BUDGET_CHECK_MS);
});

test.run();
