// `npm run bench`: origin, edge and agent as separate processes on loopback; every figure is the median of
// RUNS runs, each beside a direct-to-origin baseline measured in the same go. Prints a markdown table.
// Environment: BENCH_RUNS (3), BENCH_GIB (1), BENCH_SECONDS (5, per req/s run),
// BENCH_TRANSPORTS (grpc,websocket,websocket-json,websocket-masked).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { createToken } from '../src/edge/tokens.js';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const GIB = Number(process.env.BENCH_GIB ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'grpc,grpc-auth,websocket,websocket-json,websocket-masked').split(',');
/** grpc-auth: the edge requires a token and applies per-tunnel limits (set high enough not to bind). */
const AUTH = createToken();
const AUTH_CONFIG = join(tmpdir(), 'jetty-bench-auth.yaml');
writeFileSync(AUTH_CONFIG, `tokens:\n  - hash: ${AUTH.hash}\n    names: [bench]\ntunnel-rps: 1000000\ntunnel-max-exchanges: 10000\n`);
const EDGE_FLAGS: Record<string, string[]> = { 'grpc-auth': ['--config', AUTH_CONFIG] };
/** Agent flags per bench transport label. */
const AGENT_FLAGS: Record<string, string[]> = {
  grpc: ['--transport', 'grpc'],
  'grpc-auth': ['--transport', 'grpc', '--token', AUTH.token],
  websocket: ['--transport', 'websocket'],
  'websocket-json': ['--transport', 'websocket', '--ws-codec', 'json'],
  'websocket-masked': ['--transport', 'websocket', '--ws-mask', 'random'],
};
const BYTES = Math.round(GIB * 1024 ** 3);
const MB = 1e6;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/jetty.js');
const ORIGIN = join(ROOT, 'dist/bench/origin.js');

interface Proc {
  child: ChildProcess;
  out: string;
}

function start(args: string[], ready: RegExp): Promise<{ proc: Proc; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, JETTY_LOG_LEVEL: 'info' } });
  const proc: Proc = { child, out: '' };
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      proc.out += d;
      const m = ready.exec(proc.out);
      if (m) resolve({ proc, match: m });
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples RSS of `pids` every 50 ms while `work` runs; returns growth over the value at the start. */
async function withRss<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; growth: number[] }> {
  const base = pids.map(rssBytes);
  const peak = [...base];
  const timer = setInterval(() => pids.forEach((p, i) => (peak[i] = Math.max(peak[i], rssBytes(p)))), 50);
  try {
    const result = await work();
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i], rssBytes(p))));
    return { result, growth: peak.map((p, i) => p - base[i]) };
  } finally {
    clearInterval(timer);
  }
}

async function curl(args: string[]): Promise<Record<string, number>> {
  const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{speed_download} %{speed_upload} %{size_download} %{http_code}', ...args], {
    maxBuffer: 1 << 20,
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '0 0 0 0' }));
  const [down, up, size, code] = stdout.trim().split(' ').map(Number);
  return { down, up, size, code };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function uploadFile(): string {
  const path = join(tmpdir(), `jetty-bench-${BYTES}.bin`);
  if (!existsSync(path) || statSync(path).size !== BYTES) {
    const fd = openSync(path, 'w');
    ftruncateSync(fd, BYTES);
    closeSync(fd);
  }
  return path;
}

interface Target {
  label: string;
  base: string;
  host: string;
  pids: number[];
}

interface Figures {
  downMBs: number;
  upMBs: number;
  rps: number;
  p50: number;
  p99: number;
  rssDown: number[];
  rssUp: number[];
  rssSlow: number[];
  slowPaused: string;
}

async function measure(t: Target, file: string, originBase: string): Promise<Figures> {
  const h = ['-H', `Host: ${t.host}`];
  const down = await withRss(t.pids, () => curl([...h, `${t.base}/bytes?n=${BYTES}`]));
  if (down.result.code !== 200 || down.result.size !== BYTES) throw new Error(`${t.label}: download got HTTP ${down.result.code} and ${down.result.size} bytes`);
  // -T streams the file (--data-binary would load 1 GiB into curl's memory first).
  const up = await withRss(t.pids, () => curl([...h, '-X', 'POST', '-H', 'Content-Type: application/octet-stream', '-T', file, `${t.base}/sink`]));
  if (up.result.code !== 200) throw new Error(`${t.label}: upload got HTTP ${up.result.code}`);
  const cannon = await autocannon({ url: `${t.base}/small`, connections: 50, duration: SECONDS, headers: { host: t.host } });
  // autocannon counts errors and non-2xx answers as requests: they are reported apart, and any of
  // them fails the run (a tunnel that drops requests under load has no meaningful rate).
  const bad = cannon.non2xx + cannon.errors + cannon.timeouts;
  if (bad > 0) throw new Error(`${t.label}: small GETs had ${cannon.non2xx} non-2xx answers, ${cannon.errors} socket errors, ${cannon.timeouts} timeouts`);
  const slow = await withRss(t.pids, () => curl([...h, '--limit-rate', '5M', '--max-time', '10', `${t.base}/endless`]));
  let stats = { written: 0, pauses: 0, aborted: false };
  for (let i = 0; i < 30 && !stats.aborted; i++) {
    await new Promise((r) => setTimeout(r, 100));
    stats = JSON.parse((await run('curl', ['-s', `${originBase}/stats`])).stdout);
  }
  return {
    downMBs: down.result.down / MB,
    upMBs: up.result.up / MB,
    rps: cannon['2xx'] / cannon.duration,
    p50: cannon.latency.p50,
    p99: cannon.latency.p99,
    rssDown: down.growth,
    rssUp: up.growth,
    rssSlow: slow.growth,
    slowPaused: `${stats.pauses > 0 ? 'paused' : 'NOT paused'}, ${stats.aborted ? 'saw abort' : 'no abort'}; origin wrote ${(stats.written / MB).toFixed(0)} MB for ${(slow.result.size / MB).toFixed(0)} MB read`,
  };
}

async function main(): Promise<void> {
  const file = uploadFile();
  const started: ChildProcess[] = [];
  const stop = (): void => started.forEach((c) => c.kill('SIGTERM'));
  process.on('exit', stop);
  try {
    const origin = await start([ORIGIN, '0'], /origin (\d+)/);
    started.push(origin.proc.child);
    const originPort = Number(origin.match[1]);
    const originBase = `http://127.0.0.1:${originPort}`;
    const targets: Target[] = [{ label: 'direct', base: originBase, host: `127.0.0.1:${originPort}`, pids: [] }];
    for (const transport of TRANSPORTS) {
      const edge = await start([BIN, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', ...(EDGE_FLAGS[transport] ?? [])], /on http:\/\/localhost:(\d+) /);
      started.push(edge.proc.child);
      const port = Number(edge.match[1]);
      const agent = await start(
        [BIN, 'http', `127.0.0.1:${originPort}`, '--edge', `http://127.0.0.1:${port}`, '--name', 'bench', ...AGENT_FLAGS[transport]],
        /^Forwarding /m,
      );
      started.push(agent.proc.child);
      targets.push({ label: `jetty ${transport}`, base: `http://127.0.0.1:${port}`, host: `bench.localhost:${port}`, pids: [edge.proc.child.pid!, agent.proc.child.pid!] });
    }
    const results = new Map<string, Figures[]>(targets.map((t) => [t.label, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const t of targets) {
        process.stderr.write(`run ${i + 1}/${RUNS}: ${t.label}\n`);
        results.get(t.label)!.push(await measure(t, file, originBase));
      }
    }
    report(targets, results);
  } finally {
    stop();
  }
}

function report(targets: Target[], results: Map<string, Figures[]>): void {
  const med = (label: string, f: (x: Figures) => number): number => median(results.get(label)!.map(f));
  const mib = (b: number): string => (b / 1024 / 1024).toFixed(1);
  const lines: string[] = [];
  lines.push(`${GIB} GiB transfers with curl, ${SECONDS} s of small GETs at 50 connections (autocannon); median of ${RUNS} runs; ${new Date().toISOString()}`);
  lines.push('');
  lines.push(`| metric | direct | ${targets.slice(1).map((t) => `${t.label} | ratio`).join(' | ')} |`);
  lines.push(`|---|---|${targets.slice(1).map(() => '---|---').join('|')}|`);
  const row = (name: string, f: (x: Figures) => number, digits = 0): void => {
    const d = med('direct', f);
    lines.push(`| ${name} | ${d.toFixed(digits)} | ${targets.slice(1).map((t) => { const v = med(t.label, f); return `${v.toFixed(digits)} | ${(v / d).toFixed(2)}`; }).join(' | ')} |`);
  };
  row('download MB/s', (x) => x.downMBs);
  row('upload MB/s', (x) => x.upMBs);
  row('small GET req/s', (x) => x.rps);
  row('small GET p50 ms', (x) => x.p50, 1);
  row('small GET p99 ms', (x) => x.p99, 1);
  lines.push('');
  lines.push('| RSS growth (MiB), edge / agent | download | upload | slow reader (5 MB/s, 10 s, abort) | origin under the slow reader |');
  lines.push('|---|---|---|---|---|');
  for (const t of targets.slice(1)) {
    const g = (f: (x: Figures) => number[], i: number): string => mib(med(t.label, (x) => f(x)[i]));
    const last = results.get(t.label)!.at(-1)!;
    lines.push(`| ${t.label} | ${g((x) => x.rssDown, 0)} / ${g((x) => x.rssDown, 1)} | ${g((x) => x.rssUp, 0)} / ${g((x) => x.rssUp, 1)} | ${g((x) => x.rssSlow, 0)} / ${g((x) => x.rssSlow, 1)} | ${last.slowPaused} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);
