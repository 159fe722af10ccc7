import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { GC_BUDGET_YOUNG_BYTES } from '../../src/gc-budget.js';
import { started, stopsAfterEach, type ProcessContext } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

// Issue 13, slow-reader RSS: with incremental marking off (bin/jetty.js), V8 left a slow reader's dead
// 64 KiB buffers until its young generation filled by other allocations: ≈ 32 MiB of them at once here,
// which glibc then kept resident. These run the allocation pattern in a real process with and without
// the budget; the first fails if the budget stops collecting.
const test = suite<ProcessContext>('e2e/gc-budget');
stopsAfterEach(test);

const READER = fileURLToPath(new URL('../fixtures/garbage-reader.js', import.meta.url));
const MIB = 1024 * 1024;
/** The 1 MiB window the reader keeps alive, on top of the young bound, with slack for a check's delay. */
const ALLOWED_PEAK_BYTES = GC_BUDGET_YOUNG_BYTES + 4 * MIB;

interface Report {
  peakArrayBuffers: number;
  chunks: number;
  requested: { minor: number; major: number } | null;
}

async function read(ctx: ProcessContext, args: string[]): Promise<Report> {
  const run = started(process.execPath, [READER, ...args]);
  ctx.started.push(run);
  const m = await run.line(/^garbage-reader (.*)$/, 15_000);
  return JSON.parse(m[1]) as Report;
}

test('under a slow reader the budget keeps dead buffers within its young bound, with a bounded count of collections', async (ctx) => {
  const r = await read(ctx, ['--budget']);
  assert.ok(r.peakArrayBuffers <= ALLOWED_PEAK_BYTES, `array buffers peaked at ${(r.peakArrayBuffers / MIB).toFixed(1)} MiB`);
  // ≈ 20 MB/s for 3 s is ≈ 60 MB: about one scavenge per young bound of it, never one per chunk.
  const bytes = r.chunks * 64 * 1024;
  assert.ok(r.requested!.minor >= 1, 'it requested collections');
  assert.ok(r.requested!.minor + r.requested!.major <= (2 * bytes) / GC_BUDGET_YOUNG_BYTES, `${JSON.stringify(r.requested)} for ${r.chunks} chunks`);
});

test('without the budget the same reader piles up dead buffers past that bound (what the budget is for)', async (ctx) => {
  const r = await read(ctx, []);
  assert.ok(r.peakArrayBuffers > ALLOWED_PEAK_BYTES, `array buffers peaked at ${(r.peakArrayBuffers / MIB).toFixed(1)} MiB`);
});

test.run();
