import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/*
 * Why a collection policy of our own. bin/jetty.js turns V8's incremental marking off (it made bulk
 * transfers run 100-230 mark-compacts per GiB). What is left collects garbage only when the young
 * generation is full, and the young generation fills by JavaScript objects, not by the bytes they point
 * to: every socket read is a fresh 64 KiB ArrayBuffer held by a ~100-byte object, so tens of MiB of
 * dead buffers pile up between scavenges. They are malloc'd; glibc keeps the pages it once used, so
 * that peak of garbage becomes resident for good: 34 MiB on the edge and 52 on the agent for one
 * 5 MB/s slow reader, almost all of it in the malloc heap, while the bytes held were ≈ 2.5 MiB.
 *
 * The budget watches V8's external memory (the ArrayBuffers and what Node reports for its native
 * buffers: 1-2 µs to read), every GC_BUDGET_CHECK_MS during a burst and GC_BUDGET_QUIET_CHECK_MS
 * otherwise, and every GC_BUDGET_NOTE_BYTES of body an exchange moves (noteDataBytes), and asks for a
 * scavenge when it grew by GC_BUDGET_YOUNG_BYTES since its lowest point: buffers that died young are
 * freed before they pile up. Past the first GC_BUDGET_BURST_MINORS of a burst, never within
 * GC_BUDGET_MINOR_INTERVAL_MS of a collection, unless it grew by GC_BUDGET_BULK_BYTES (a bulk transfer).
 * A scavenge cannot free what was promoted (a slow reader's chunks wait long enough in its windows), so
 * when the level external memory falls back to (its floor over GC_BUDGET_FLOOR_WINDOW_MS) rose by
 * GC_BUDGET_OLD_BYTES over what the last full collection left, the next look asks for a full one,
 * whether a scavenge is due or not, at most one per GC_BUDGET_MAJOR_INTERVAL_MS. Buffers that live on
 * (32 slow readers' windows) raise what a full collection leaves, so they stop asking for more.
 */

const MIB = 1024 * 1024;

/**
 * How often external memory is read during a burst (GC_BUDGET_BURST_BYTES) while V8 does not collect by
 * itself (ms). The burst at the start of a transfer moves ≈ 2.5 MiB per 5 ms.
 */
export const GC_BUDGET_CHECK_MS = 5;
/**
 * How often it is read once it has been still for GC_BUDGET_QUIET_AFTER_MS: a 5 ms timer alone costs an
 * idle process ≈ 1.3 % of a core, a 20 ms one ≈ 0.6 %, 50 ms ≈ 0.15 %. The price: the first ≤ 50 ms of
 * the burst that opens a slow reader go unchecked (the edge grew 12-18 MiB at 20 ms, 16-24 at 50 ms,
 * 10-11 at a constant 5 ms; same busy machine, one run each).
 */
export const GC_BUDGET_QUIET_CHECK_MS = 50;
export const GC_BUDGET_QUIET_AFTER_MS = 500;
/**
 * Growth of external memory between two checks that counts as a burst and brings the fast checks: ≥ 10 MB/s
 * at the quiet interval. Small requests move less than that between V8's own collections, a slow reader
 * in its steady state too (its garbage grows to the young bound in ≈ 1 s: the quiet checks see it in time).
 */
export const GC_BUDGET_BURST_BYTES = 512 * 1024;
/** Growth of external memory over its lowest value since the last request that asks for a scavenge. */
export const GC_BUDGET_YOUNG_BYTES = 4 * MIB;
/**
 * Body bytes an exchange moves (noteDataBytes(), either way) between two looks at external memory from
 * the data path itself, besides the timer's. A quiet process looks every GC_BUDGET_QUIET_CHECK_MS, and
 * the burst that opens a transfer moved 10-25 MiB before the timer saw it; one look per MiB costs
 * 1-2 µs, nothing beside the bytes.
 */
export const GC_BUDGET_NOTE_BYTES = MIB;
/**
 * Scavenges a burst may ask for without GC_BUDGET_MINOR_INTERVAL_MS between them: the opening burst
 * of a slow reader fills the windows and kernel buffers in ≈ 130 ms, so with the spacing alone its
 * garbage grew to 20-22 MiB on the edge and 36-39 on the agent. A few scavenges per burst cost a few
 * ms; a bulk transfer is one long burst, so it is still spaced after these.
 */
export const GC_BUDGET_BURST_MINORS = 4;
/**
 * No scavenge is requested within this many ms of the last collection, V8's own or ours. A bulk transfer
 * makes V8 scavenge every 16 MiB or so by itself; a request per 4 MiB on top of those cost ≈ 3× the
 * scavenges and ≈ 20 % more CPU per GiB. A slow reader's garbage (5-32 MB/s) never meets this limit.
 */
export const GC_BUDGET_MINOR_INTERVAL_MS = 100;
/**
 * Growth of external memory over its lowest value that asks for a scavenge even within
 * GC_BUDGET_MINOR_INTERVAL_MS of the last collection. V8 scavenges by itself only once the young
 * generation's ArrayBuffers reach 32 MiB (twice its largest semi-space, a constant of the build, no
 * flag), so a 1 GiB transfer kept 32-36 MiB of dead socket reads resident on each side. One scavenge
 * per GC_BUDGET_BULK_BYTES brought the edge to 22-28 MiB; the price is ≈ 1 ms of scavenge per 16 MiB
 * of buffers, ≈ 50 ms of CPU per GiB moved (bench/README, "Scavenges per 16 MiB in bulk").
 */
export const GC_BUDGET_BULK_BYTES = 16 * MIB;
/** Rise of the external floor over what the last full collection left that makes the next request a full one. */
export const GC_BUDGET_OLD_BYTES = 16 * MIB;
/** The window the external floor is taken over (ms). */
export const GC_BUDGET_FLOOR_WINDOW_MS = 1_000;
/** At most one full collection per this many ms (each is a pause of a few ms with incremental marking off). */
export const GC_BUDGET_MAJOR_INTERVAL_MS = 1_000;

export type GcKind = 'minor' | 'major';

export interface GcBudgetInit {
  /** Runs a collection of that kind, synchronously. */
  collect: (kind: GcKind) => void;
  /** Bytes of external memory and of the JavaScript heap in use now (a drop of the latter means V8 collected). */
  read: () => { external: number; heapUsed: number };
  /** A monotonic clock in ms. */
  now: () => number;
}

/** The policy, clock and collector given: `check()` is what the timer calls. */
export class GcBudget {
  /** Collections requested so far, by kind. */
  readonly requested = { minor: 0, major: 0 };
  private low = Infinity;
  private windowMin = Infinity;
  private windowStart: number;
  /** The floor over the last complete window. */
  private floor = Infinity;
  /** The floor of the first complete window after the last full collection (or start). */
  private majorFloor = Infinity;
  private lastMajor = -Infinity;
  private last = 0;
  private movedAt = -Infinity;
  private lastHeapUsed = 0;
  private lastGc = -Infinity;
  /** Scavenges requested since external memory last stood still (GC_BUDGET_BURST_MINORS). */
  private burstMinors = 0;
  /** Bytes noted since the last look from the data path. */
  private noted = 0;
  /** Looks taken from the data path (note()), beside the timer's. */
  dataLooks = 0;

  constructor(private readonly init: GcBudgetInit) {
    this.windowStart = init.now();
  }

  /** `bytes` of a body went by: every GC_BUDGET_NOTE_BYTES, one look now (see noteDataBytes()). */
  note(bytes: number): void {
    this.noted += bytes;
    if (this.noted < GC_BUDGET_NOTE_BYTES) return;
    this.noted = 0;
    this.dataLooks++;
    this.check();
  }

  /** One look at external memory; answers the delay (ms) before the next. */
  check(): number {
    const { external: ext, heapUsed } = this.init.read();
    const now = this.init.now();
    const v8Collected = heapUsed < this.lastHeapUsed;
    if (v8Collected) {
      // V8 collected by itself: its garbage is gone or going; the next checks find the new low.
      this.lastGc = now;
      this.low = Infinity;
    }
    this.lastHeapUsed = heapUsed;
    if (ext - this.last >= GC_BUDGET_BURST_BYTES) this.movedAt = now;
    else if (now - this.movedAt >= GC_BUDGET_QUIET_AFTER_MS) this.burstMinors = 0;
    this.last = ext;
    // While V8 collects by itself between two checks (bulk transfers, small requests), the fast timer
    // has nothing to add and is not paid: 200 wake-ups a second cost a bulk transfer a few % of CPU.
    const next = now - this.movedAt < GC_BUDGET_QUIET_AFTER_MS && !v8Collected ? GC_BUDGET_CHECK_MS : GC_BUDGET_QUIET_CHECK_MS;
    this.windowMin = Math.min(this.windowMin, ext);
    if (now - this.windowStart >= GC_BUDGET_FLOOR_WINDOW_MS) {
      this.floor = this.windowMin;
      if (this.majorFloor === Infinity) this.majorFloor = this.floor;
      this.windowMin = Infinity;
      this.windowStart = now;
    }
    // A full collection does not wait for a scavenge to be due: while V8 scavenges by itself every few
    // 100 ms (32 slow readers moving 32 MB/s), no scavenge of ours ever is, and the opening burst's
    // promoted buffers (75 MiB of them on a gRPC edge) stayed until V8's own full collection, 4 s later.
    if (this.floor - this.majorFloor > GC_BUDGET_OLD_BYTES && now - this.lastMajor >= GC_BUDGET_MAJOR_INTERVAL_MS) {
      this.lastMajor = now;
      this.collect('major', now);
      // What this collection leaves is measured over a fresh window.
      this.floor = this.majorFloor = this.windowMin = Infinity;
      this.windowStart = now;
      return next;
    }
    const spaced =
      now - this.lastGc >= GC_BUDGET_MINOR_INTERVAL_MS || this.burstMinors < GC_BUDGET_BURST_MINORS || ext - this.low >= GC_BUDGET_BULK_BYTES;
    if (ext - this.low <= GC_BUDGET_YOUNG_BYTES || !spaced) {
      this.low = Math.min(this.low, ext);
      return next;
    }
    this.burstMinors++;
    this.collect('minor', now);
    return next;
  }

  private collect(kind: GcKind, now: number): void {
    // The freed bytes show only once V8's sweeper has run: the next checks find the new low.
    this.low = Infinity;
    this.lastGc = now;
    this.requested[kind]++;
    this.init.collect(kind);
    this.lastHeapUsed = this.init.read().heapUsed;
  }
}

/** V8's gc() taken from a fresh context once --expose-gc is set: the process's own global has none. */
function exposedGc(): (options: { type: GcKind }) => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as (options: { type: GcKind }) => void;
}

/** The budget startGcBudget() started in this process, if any. */
let active: GcBudget | undefined;

/**
 * Called by every exchange for each body chunk it sends or receives: the budget looks at external
 * memory every GC_BUDGET_NOTE_BYTES of them (a process without a budget: nothing).
 */
export function noteDataBytes(bytes: number): void {
  active?.note(bytes);
}

/** @internal makes `budget` the one noteDataBytes() feeds (startGcBudget() does; tests pass their own). */
export function useGcBudget(budget: GcBudget | undefined): void {
  active = budget;
}

/**
 * Starts the budget for this process: unref'd timers, so it never keeps the process alive. gc() is
 * fetched on the first request (a fresh context costs memory an idle process does not need to pay).
 */
export function startGcBudget(): GcBudget {
  let gc: ((options: { type: GcKind }) => void) | undefined;
  const budget = new GcBudget({
    collect: (type) => (gc ??= exposedGc())({ type }),
    read: () => {
      const h = getHeapStatistics();
      return { external: h.external_memory, heapUsed: h.used_heap_size };
    },
    now: () => performance.now(),
  });
  useGcBudget(budget);
  const tick = (): void => void setTimeout(tick, budget.check()).unref();
  tick();
  return budget;
}
