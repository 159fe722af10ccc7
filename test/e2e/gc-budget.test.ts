import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as assert from 'uvu/assert';
import { GC_BUDGET_BURST_MINORS, GC_BUDGET_MAJOR_INTERVAL_MS, GC_BUDGET_MINOR_INTERVAL_MS, GC_BUDGET_NOTE_BYTES, GC_BUDGET_YOUNG_BYTES, GcBudget, useGcBudget } from '../../src/gc-budget.js';
import { send, startAgent, startEdge, startOrigin, waitFor } from '../helpers/harness.js';
import { hasTool, JETTY_BIN, started, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';
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

const FORCED_GCS = fileURLToPath(new URL('../fixtures/forced-gcs.js', import.meta.url));
const HAS_CURL = hasTool('curl', ['--version'], 'e2e/gc-budget');
/** The slow reader: curl's own rate limit, for this long. */
const SLOW_RATE = '5M';
const SLOW_SECONDS = 3;
/** The origin's endless body, in blocks written as fast as the tunnel takes them. */
const BLOCK = Buffer.alloc(64 * 1024, 0x61);

function jettyCounted(ctx: ProcessContext, args: string[]): Running {
  const run = started(process.execPath, ['--import', FORCED_GCS, JETTY_BIN, ...args], { env: { ...process.env, JETTY_LOG_LEVEL: 'warn' } });
  ctx.started.push(run);
  return run;
}

async function forcedGcs(run: Running): Promise<number> {
  const seen = run.stdout.length;
  run.child.kill('SIGUSR2');
  const re = /^forced-gcs: (\d+) of (\d+)$/m;
  await waitFor(() => re.test(run.stdout.slice(seen)), 5_000, 'the forced-gcs line');
  return Number(re.exec(run.stdout.slice(seen))![1]);
}

(HAS_CURL ? test : test.skip)('jetty edge and jetty http run the budget: a slow reader gets collections forced, within its rate limits', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => {
    const pump = (): void => {
      while (res.write(BLOCK));
    };
    res.on('drain', pump);
    res.on('close', () => res.off('drain', pump));
    pump();
  });
  const edge = jettyCounted(ctx, ['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1]);
  const agent = jettyCounted(ctx, ['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'gc']);
  await agent.line(/^Forwarding /);
  const before = [await forcedGcs(edge), await forcedGcs(agent)];
  // curl ends with exit 28 (its --max-time), which is how this read is meant to end.
  const curl = promisify(execFile)('curl', ['-s', '-o', '/dev/null', '--limit-rate', SLOW_RATE, '--max-time', String(SLOW_SECONDS), '-H', `Host: gc.localhost:${port}`, `http://127.0.0.1:${port}/`]);
  await curl.catch((err: { code?: number }) => assert.is(err.code, 28, `curl failed: ${String(err)}`));
  const forced = [(await forcedGcs(edge)) - before[0], (await forcedGcs(agent)) - before[1]];
  assert.ok(forced[0] >= 1 && forced[1] >= 1, `edge / agent forced ${forced} collections under a slow reader`);
  // At most the opening burst's unspaced few, then one scavenge per minor interval and one full
  // collection per major interval, over the read.
  const most = GC_BUDGET_BURST_MINORS + (SLOW_SECONDS * 1000) / GC_BUDGET_MINOR_INTERVAL_MS + (SLOW_SECONDS * 1000) / GC_BUDGET_MAJOR_INTERVAL_MS + 2;
  for (const n of forced) assert.ok(n <= most, `${n} forced collections in ${SLOW_SECONDS} s (at most ${most})`);
});

test('every exchange notes the body bytes it moves, both ways: the budget looks once per GC_BUDGET_NOTE_BYTES', async (ctx) => {
  const body = Buffer.alloc(8 * MIB, 0x62);
  ctx.origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end(body));
  });
  const edge = await startEdge();
  const agent = await startAgent(edge, new URL(`http://127.0.0.1:${ctx.origin.port}`), 'notes');
  const collected: string[] = [];
  const budget = new GcBudget({ read: () => ({ external: 0, heapUsed: 0 }), now: () => performance.now(), collect: (kind) => collected.push(kind) });
  useGcBudget(budget);
  try {
    const r = await send(edge, 'notes', '/', { method: 'POST', body });
    assert.is(r.res.statusCode, 200);
    assert.is(r.body.length, body.length);
  } finally {
    useGcBudget(undefined);
    await agent.close();
    await edge.close();
  }
  // 8 MiB up and 8 MiB down, each seen by the sending and the receiving exchange in this one process.
  const looks = (4 * body.length) / GC_BUDGET_NOTE_BYTES;
  assert.ok(budget.dataLooks >= looks - 4 && budget.dataLooks <= looks, `${budget.dataLooks} looks for ${looks} MiB noted`);
  assert.equal(collected, []);
});

test.run();
