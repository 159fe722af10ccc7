// Phase `memory`: every scenario on a freshly started edge and agent (RSS from /proc/PID/status, peak
// growth over the value before the scenario), per transport, medians of RUNS:
//   start-up: spawn to the edge's listening line and to the agent's Forwarding line; idle RSS 1 s later;
//   one slow reader (curl --limit-rate 5M, 10 s, then it hangs up) on an endless body;
//   32 concurrent slow readers (1 MB/s each, 10 s), checking every origin response is paused on drain;
//   a 1 GiB download and a 1 GiB upload.
// The floor: a bare `node` and `node` having loaded only the packages each Jetty process loads (nothing
// of Jetty's own), idle RSS read the same way: what no Jetty process on this Node can go below.
// BENCH_BASELINE=DIR adds each transport again from another checkout (DIR/bin/jetty.js, built), in the
// same rounds, as the small phase does.
import { join, resolve } from 'node:path';
import { download, originStats, slowReader, upload, uploadFile } from './load.js';
import { MIB, ROOT, RUNS, median, pollUntil, rssBytes, startOrigin, startProc, startTunnel, stopTunnel, transports, withRss, type Tunnel } from './procs.js';

const GIB = Number(process.env.BENCH_GIB ?? 1);
/** The issue's slow reader: 5 MB/s for 10 s. */
const SLOW_RATE = '5M';
const SLOW_SECONDS = 10;
const MANY_READERS = 32;
const MANY_RATE = '1M';
/** When the origin's paused writers are counted during the 32-reader scenario. */
const MANY_SAMPLE_AT_MS = 8_000;
/** The idle period before the idle RSS is read (start-up garbage settles). */
const IDLE_MS = 1_000;
/** How long the origin may take to see a slow reader hang up. */
const ABORT_SEEN_TIMEOUT_MS = 5_000;

interface Run {
  edgeStartMs: number;
  agentStartMs: number;
  idle: [number, number];
  slow: number[];
  slowNote: string;
  many: number[];
  manyWaiting: number;
  down: number[];
  up: number[];
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The packages each process loads by the time it is idle (read off `require.cache` of a running edge and agent). */
const FLOORS: [string, string[]][] = [
  ['node alone', []],
  ['node + @grpc/grpc-js', ['@grpc/grpc-js']],
  ['node + the packages a gRPC agent loads (@grpc/grpc-js, protobufjs, pino)', ['@grpc/grpc-js', 'protobufjs', 'pino']],
  ['node + the packages a WebSocket agent loads (ws, protobufjs, pino)', ['ws', 'protobufjs', 'pino']],
  ['node + the packages an edge loads (@grpc/grpc-js, ws, protobufjs, pino)', ['@grpc/grpc-js', 'ws', 'protobufjs', 'pino']],
];

/** Idle RSS of `node` that has loaded `packages` (from the project's node_modules) and nothing else, read IDLE_MS later. */
async function floorRss(packages: string[]): Promise<number> {
  const code = `${packages.map((p) => `require(${JSON.stringify(p)});`).join('')}console.log('loaded');setInterval(() => {}, 1e6);`;
  const { proc, ready } = startProc(process.execPath, ['-e', code], /loaded/, { cwd: ROOT });
  try {
    await ready;
    await delay(IDLE_MS);
    return rssBytes(proc.pid);
  } finally {
    await proc.stop();
  }
}

async function fresh<T>(originPort: number, transport: string, bin: string | undefined, work: (t: Tunnel) => Promise<T>): Promise<T> {
  const t = await startTunnel(originPort, transport, [], bin);
  try {
    return await work(t);
  } finally {
    await stopTunnel(t);
  }
}

async function oneRun(originPort: number, transport: string, bin: string | undefined, bytes: number, file: { path: string; sha256: string }): Promise<Run> {
  const r = {} as Run;
  await fresh(originPort, transport, bin, async (t) => {
    r.edgeStartMs = t.edgeStartMs;
    r.agentStartMs = t.agentStartMs;
    await delay(IDLE_MS);
    r.idle = [rssBytes(t.edge.pid), rssBytes(t.agent.pid)];
    const before = await originStats(originPort);
    const slow = await withRss([t.edge.pid, t.agent.pid], () => slowReader(t, SLOW_RATE, SLOW_SECONDS));
    await pollUntil(async () => (await originStats(originPort)).aborted > before.aborted, 'the origin did not see the slow reader hang up', ABORT_SEEN_TIMEOUT_MS).catch(() => undefined);
    const after = await originStats(originPort);
    r.slow = slow.growth;
    r.slowNote = `${after.pauses > before.pauses ? 'paused' : 'NOT paused'}, ${after.aborted > before.aborted ? 'abort seen' : 'NO abort'}, origin ${((after.written - before.written) / MIB).toFixed(0)} MiB written for ${(slow.result / MIB).toFixed(0)} MiB read`;
  });
  await fresh(originPort, transport, bin, async (t) => {
    let waiting = 0;
    const sampler = delay(MANY_SAMPLE_AT_MS).then(async () => (waiting = (await originStats(originPort)).waiting));
    const many = await withRss([t.edge.pid, t.agent.pid], () => Promise.all(Array.from({ length: MANY_READERS }, () => slowReader(t, MANY_RATE, SLOW_SECONDS))));
    await sampler;
    r.many = many.growth;
    r.manyWaiting = waiting;
  });
  r.down = await fresh(originPort, transport, bin, async (t) => (await withRss([t.edge.pid, t.agent.pid], () => download(t, bytes))).growth);
  r.up = await fresh(originPort, transport, bin, async (t) => (await withRss([t.edge.pid, t.agent.pid], () => upload(t, file, bytes))).growth);
  return r;
}

export async function memory(): Promise<string> {
  const bytes = Math.round(GIB * 1024 ** 3);
  const file = uploadFile(bytes);
  const origin = await startOrigin();
  const results = new Map<string, Run[]>();
  const floors = new Map<string, number[]>(FLOORS.map(([label]) => [label, []]));
  const baseline = process.env.BENCH_BASELINE ? join(resolve(process.env.BENCH_BASELINE), 'bin/jetty.js') : undefined;
  const builds: [string, string | undefined][] = [['', undefined], ...(baseline ? [[' (baseline)', baseline] as [string, string]] : [])];
  try {
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`memory round ${i + 1}/${RUNS}: the floor\n`);
      for (const [label, packages] of FLOORS) floors.get(label)!.push(await floorRss(packages));
      for (const t of transports()) {
        for (const [suffix, bin] of builds) {
          process.stderr.write(`memory round ${i + 1}/${RUNS}: ${t}${suffix}\n`);
          results.set(t + suffix, [...(results.get(t + suffix) ?? []), await oneRun(origin.port, t, bin, bytes, file)]);
        }
      }
    }
  } finally {
    await origin.proc.stop();
  }
  const mib = (b: number): string => (b / MIB).toFixed(1);
  const lines = [
    `Fresh edge + agent per scenario; RSS from /proc/PID/status, peak growth over the value before the scenario, MiB; medians of ${RUNS}. Slow reader: curl --limit-rate ${SLOW_RATE} for ${SLOW_SECONDS} s on an endless body. ${MANY_READERS} slow readers: ${MANY_RATE}B/s each for ${SLOW_SECONDS} s; "paused" = origin responses waiting on drain ${MANY_SAMPLE_AT_MS / 1000} s in (of ${MANY_READERS}). Idle RSS ${IDLE_MS / 1000} s after Forwarding.`,
    '',
    `| transport | start-up ms edge / agent (to Forwarding) | idle RSS MiB edge / agent | 1 slow reader growth edge / agent | 32 slow readers growth edge / agent (paused) | ${GIB} GiB down growth edge / agent | ${GIB} GiB up growth edge / agent | origin under the slow reader (last run) |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [t, rs] of results) {
    const m = (f: (r: Run) => number): number => median(rs.map(f));
    const pair = (f: (r: Run) => number[]): string => `${mib(m((r) => f(r)[0]))} / ${mib(m((r) => f(r)[1]))}`;
    lines.push(
      `| ${t} | ${m((r) => r.edgeStartMs).toFixed(0)} / ${m((r) => r.agentStartMs).toFixed(0)} | ${pair((r) => r.idle)} | ${pair((r) => r.slow)} | ${pair((r) => r.many)} (${Math.min(...rs.map((r) => r.manyWaiting))}/${MANY_READERS}) | ${pair((r) => r.down)} | ${pair((r) => r.up)} | ${rs.at(-1)!.slowNote} |`,
    );
  }
  if (baseline) lines.push('', `(baseline) = the build in ${resolve(process.env.BENCH_BASELINE!)}, measured in the same rounds.`);
  lines.push('', `The floor: idle RSS ${IDLE_MS / 1000} s after \`node\` loaded only these packages (none of Jetty's code), MiB, medians of ${RUNS}:`, '', '| process | idle RSS MiB |', '|---|---|');
  for (const [label, rss] of floors) lines.push(`| ${label} | ${mib(median(rss))} |`);
  return lines.join('\n');
}
