// `node dist/bench/cluster.js` (after `npm run build`), or `npm run bench -- --only cluster`: issue 14's
// figures on a real 3-edge cluster (test/helpers/cluster.ts: edges on 127.0.0.11–13, one redis-server,
// HAProxy round-robin in front), the bench origin (bench/origin.ts) and one agent per transport.
//  1. small GETs (wrk -t1 -c50) and a 1 GiB download straight to the edge holding the tunnel ("right
//     edge") and to another one ("wrong edge": forwarded over the peer link), with direct to the origin
//     as the baseline, medians of RUNS rounds;
//  2. Redis commands per request on each path (INFO commandstats around the small GETs);
//  3. SIGKILL of the edge holding the tunnel: time until the first request through HAProxy succeeds
//     again, over KILLS runs (the killed edge is restarted between runs).
// Environment: BENCH_RUNS (3), BENCH_SECONDS (5), BENCH_GIB (1), BENCH_KILLS (10), BENCH_TRANSPORTS.
import { request } from 'node:http';
import { Cluster, type ClusterEdge } from '../test/helpers/cluster.js';
import { Haproxy } from '../test/helpers/haproxy.js';
import type { Running } from '../test/helpers/process.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { download, smallGets, type Target } from './load.js';
import { median, RUNS, startOrigin, transports } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const GIB = Number(process.env.BENCH_GIB ?? 1);
const KILLS = Number(process.env.BENCH_KILLS ?? 10);
/** Give up on a recovery after this long (a failure of the run, not a figure). */
const RECOVERY_LIMIT_MS = 30_000;
/** Pause between probes while a killed edge's tunnel is not served yet. */
const PROBE_PAUSE_MS = 10;

interface PathFigures {
  rps: number[];
  p99: number[];
  down: number[];
  redisPerRequest: number[];
}

/** One GET through HAProxy on a fresh connection: resolves true on a 200. */
function probe(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/small', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

const totalCommands = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

async function measurePath(cluster: Cluster, t: Target, figures: PathFigures, bytes: number): Promise<void> {
  const before = totalCommands(await cluster.redis.commandCounts());
  const small = await smallGets(t, SECONDS, 50);
  // The reading of INFO itself is one command.
  const after = totalCommands(await cluster.redis.commandCounts()) - 1;
  if (small.non2xx > 0 || small.errors > 0) throw new Error(`small GETs via ${t.base}: ${small.non2xx} non-2xx, ${small.errors} socket errors`);
  figures.rps.push(small.rps);
  figures.p99.push(small.p99ms);
  figures.redisPerRequest.push((after - before) / Math.max(1, small.ok));
  figures.down.push(await download(t, bytes));
}

/** Kills the holder KILLS times; ms until the tunnel answered through HAProxy again, each time. */
async function killRecoveries(cluster: Cluster, host: string): Promise<number[]> {
  const times: number[] = [];
  for (let k = 0; k < KILLS; k++) {
    const holder = await cluster.holder();
    if (!holder) throw new Error('no edge holds the tunnel');
    const killedAt = performance.now();
    holder.proc.child.kill('SIGKILL');
    await holder.proc.exited;
    while (!(await probe(cluster.port, host))) {
      if (performance.now() - killedAt > RECOVERY_LIMIT_MS) throw new Error(`tunnel not served ${RECOVERY_LIMIT_MS} ms after SIGKILL of ${holder.id}`);
      await new Promise((r) => setTimeout(r, PROBE_PAUSE_MS));
    }
    times.push(performance.now() - killedAt);
    await cluster.startEdge(cluster.numberOf(holder));
    process.stderr.write(`cluster: SIGKILL ${k + 1}/${KILLS}: served again after ${Math.round(times.at(-1)!)} ms\n`);
  }
  return times;
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export async function cluster(): Promise<string> {
  if (!RedisServer.available('bench/cluster') || !Haproxy.available('bench/cluster')) return 'cluster: skipped (redis-server or haproxy missing)\n';
  const bytes = Math.round(GIB * 1024 ** 3);
  const origin = await startOrigin();
  const lines: string[] = [];
  try {
    const direct: PathFigures = { rps: [], p99: [], down: [], redisPerRequest: [] };
    const directTarget = { base: `http://127.0.0.1:${origin.port}`, host: `127.0.0.1:${origin.port}` };
    for (const transport of transports()) {
      const c = await Cluster.start();
      const agents: Running[] = [];
      try {
        agents.push(await c.agent(origin.port, 'bench', transport));
        const holder = (await c.holder()) as ClusterEdge;
        const other = c.edges.find((e) => e !== holder)!;
        const host = `bench.localhost:${c.port}`;
        const right: PathFigures = { rps: [], p99: [], down: [], redisPerRequest: [] };
        const wrong: PathFigures = { rps: [], p99: [], down: [], redisPerRequest: [] };
        for (let i = 0; i < RUNS; i++) {
          process.stderr.write(`cluster ${transport} round ${i + 1}/${RUNS}\n`);
          if (direct.rps.length < RUNS) {
            const s = await smallGets(directTarget, SECONDS, 50);
            direct.rps.push(s.rps);
            direct.p99.push(s.p99ms);
            direct.down.push(await download(directTarget, bytes));
          }
          await measurePath(c, { base: `http://${holder.host}:${c.port}`, host }, right, bytes);
          await measurePath(c, { base: `http://${other.host}:${c.port}`, host }, wrong, bytes);
        }
        const kills = await killRecoveries(c, host);
        const row = (label: string, f: PathFigures): string =>
          `| ${label} | ${fmt(median(f.rps))} (${fmt(median(f.p99), 1)}) | ${fmt(median(f.down))} | ${f.redisPerRequest.length ? fmt(median(f.redisPerRequest), 4) : '—'} |`;
        if (lines.length === 0) {
          lines.push(`cluster: 3 edges + redis-server + HAProxy on loopback, medians of ${RUNS}; small GETs wrk -t1 -c50 ${SECONDS} s; ${GIB} GiB download with curl`, '');
          lines.push('| path | small GETs/s (p99 ms) | download MB/s | Redis commands per request |', '|---|---|---|---|');
          lines.push(row('direct to origin', direct));
        }
        lines.push(row(`${transport}: right edge`, right), row(`${transport}: wrong edge (forwarded)`, wrong));
        lines.push(`| ${transport}: wrong / right | ×${fmt(median(wrong.rps) / median(right.rps), 2)} | ×${fmt(median(wrong.down) / median(right.down), 2)} | |`);
        const sorted = [...kills].sort((a, b) => a - b);
        lines.push(`| ${transport}: SIGKILL of the holder → served again (${KILLS} runs) | median ${fmt(median(kills))} ms, max ${fmt(sorted.at(-1)!)} ms | | |`);
      } finally {
        await Promise.all(agents.map((a) => a.kill()));
        await c.stop();
      }
    }
  } finally {
    await origin.proc.stop();
  }
  return `${lines.join('\n')}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(await cluster());
}
