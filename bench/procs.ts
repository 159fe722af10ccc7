// What every bench phase shares: the processes it started (killed on exit, Ctrl-C and SIGTERM), its temp
// directories (removed the same way), RSS and CPU time read from /proc, and starting origin, edge and agent.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const JETTY_BIN = join(ROOT, 'bin/jetty.js');
export const ORIGIN_JS = join(ROOT, 'dist/bench/origin.js');
/** How long a process may take to print its ready line. */
export const READY_TIMEOUT_MS = 15_000;
/** How long a stopped process gets between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS = 5_000;
/** Bytes of a process's stdout kept while waiting for its ready line; the rest is discarded. */
export const MAX_READY_OUTPUT_BYTES = 64 * 1024;
export const MB = 1e6;
export const MIB = 1024 * 1024;
/** Kernel clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on every Linux we run on). */
const CLOCK_TICKS_PER_S = 100;

const started = new Set<ChildProcess>();
/** Children started as process-group leaders (shell pipelines): killed with their whole group. */
const groups = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** Extra cleanups (an sshd privilege-separation directory the bench created). */
const cleanups: (() => void)[] = [];

function cleanupNow(): void {
  for (const c of started) {
    try {
      if (groups.has(c) && c.pid) process.kill(-c.pid, 'SIGKILL');
      else c.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  started.clear();
  for (const f of cleanups.splice(0)) f();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanupNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}, stopping everything it started\n`);
    cleanupNow();
    process.exit(130);
  });
}

/** Tracks a child spawned elsewhere so it is killed with the rest; `group`: it was spawned detached, kill its group. */
export function track(child: ChildProcess, group = false): ChildProcess {
  started.add(child);
  if (group) groups.add(child);
  child.once('exit', () => (started.delete(child), groups.delete(child)));
  return child;
}

/** A temp directory removed when the bench exits, however it exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

export function onCleanup(f: () => void): void {
  cleanups.push(f);
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  /** When spawn was called (performance.now()). */
  spawnedAt: number;
  stop(): Promise<number | null>;
}

/** Spawns a tracked process; `ready` resolves with the first match of `readyLine` in its stdout. */
export function startProc(cmd: string, args: string[], readyLine: RegExp | null, opts: SpawnOptions = {}): { proc: Proc; ready: Promise<RegExpExecArray | null> } {
  const spawnedAt = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  started.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => (started.delete(child), resolve(code))));
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const proc: Proc = {
    child,
    pid: child.pid ?? 0,
    exited,
    spawnedAt,
    stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        void exited.then(() => clearTimeout(t));
      }
      return exited;
    },
  };
  const ready = new Promise<RegExpExecArray | null>((resolve, reject) => {
    if (!readyLine) {
      child.stdout?.resume();
      return resolve(null);
    }
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')}: no ${readyLine} within ${READY_TIMEOUT_MS} ms; stderr: ${err}`)), READY_TIMEOUT_MS);
    const onData = (d: Buffer): void => {
      out = (out + d.toString()).slice(-MAX_READY_OUTPUT_BYTES);
      const m = readyLine.exec(out);
      if (m) {
        clearTimeout(timer);
        // Logs keep flowing (one line per exchange): read and drop them so the pipe never blocks the child.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(' ')} exited ${code} before ${readyLine}; stderr: ${err}`));
    });
  });
  ready.catch(() => undefined);
  return { proc, ready };
}

/** The bench origin (bench/origin.ts) on a loopback port. */
export async function startOrigin(): Promise<{ proc: Proc; port: number }> {
  const { proc, ready } = startProc(process.execPath, [ORIGIN_JS, '0'], /origin (\d+)/);
  return { proc, port: Number((await ready)![1]) };
}

/** Extra node flags for jetty processes (the profiler sets --cpu-prof here). */
export const jettyNodeFlags: string[] = [];

export interface Tunnel {
  edge: Proc;
  agent: Proc;
  port: number;
  host: string;
  base: string;
  /** ms from spawning the edge to its listening line, and from spawning the agent to Forwarding. */
  edgeStartMs: number;
  agentStartMs: number;
}

/** Agent flags per bench transport label. */
export const AGENT_FLAGS: Record<string, string[]> = {
  grpc: ['--transport', 'grpc'],
  websocket: ['--transport', 'websocket'],
  'websocket-json': ['--transport', 'websocket', '--ws-codec', 'json'],
  'websocket-masked': ['--transport', 'websocket', '--ws-mask', 'random'],
};

/** Bench transports from BENCH_TRANSPORTS (default: the two the issue measures). */
export function transports(): string[] {
  const list = (process.env.BENCH_TRANSPORTS ?? 'grpc,websocket').split(',').filter(Boolean);
  for (const t of list) if (!AGENT_FLAGS[t]) throw new Error(`BENCH_TRANSPORTS: unknown transport ${t} (known: ${Object.keys(AGENT_FLAGS).join(', ')})`);
  return list;
}

const jettyEnv = { ...process.env, JETTY_LOG_LEVEL: 'info', JETTY_LOG_FORMAT: 'json' };

/** A fresh edge (extra edge flags allowed) on loopback ports, no admin listener. */
export async function startEdge(edgeFlags: string[] = [], bin = JETTY_BIN): Promise<{ edge: Proc; port: number; grpcPort: number; startMs: number }> {
  const { proc, ready } = startProc(
    process.execPath,
    [...jettyNodeFlags, bin, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', ...edgeFlags],
    /on http:\/\/localhost:(\d+) \(agents: (?:grpc on port (\d+))?/,
    { env: jettyEnv },
  );
  const m = (await ready)!;
  return { edge: proc, port: Number(m[1]), grpcPort: Number(m[2] ?? 0), startMs: performance.now() - proc.spawnedAt };
}

/** A fresh agent for `name` in front of the origin. */
export async function startAgent(edgePort: number, originPort: number, transport: string, name = 'bench', bin = JETTY_BIN): Promise<{ agent: Proc; startMs: number }> {
  const { proc, ready } = startProc(
    process.execPath,
    [...jettyNodeFlags, bin, 'http', `127.0.0.1:${originPort}`, '--edge', `http://127.0.0.1:${edgePort}`, '--name', name, ...AGENT_FLAGS[transport]],
    /^Forwarding /m,
    { env: jettyEnv },
  );
  await ready;
  return { agent: proc, startMs: performance.now() - proc.spawnedAt };
}

/** A fresh edge and agent for one transport (`bin`: another checkout's bin/jetty.js, for a baseline). */
export async function startTunnel(originPort: number, transport: string, edgeFlags: string[] = [], bin = JETTY_BIN): Promise<Tunnel> {
  const { edge, port, startMs } = await startEdge(edgeFlags, bin);
  const { agent, startMs: agentStartMs } = await startAgent(port, originPort, transport, 'bench', bin);
  return { edge, agent, port, host: `bench.localhost:${port}`, base: `http://127.0.0.1:${port}`, edgeStartMs: startMs, agentStartMs };
}

export async function stopTunnel(t: Tunnel): Promise<void> {
  await Promise.all([t.agent.stop(), t.edge.stop()]);
}

export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of one process, in µs. */
function cpuMicros(pid: number): { ppid: number; us: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): state ppid ... utime(14) stime(15).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), us: ((Number(f[11]) + Number(f[12])) * 1e6) / CLOCK_TICKS_PER_S };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (µs) of this process and of the children it has waited for (cutime + cstime): the load
 * generators (curl, sh with sha256sum, wrk), which are gone by the time a measure ends.
 */
export function loadGeneratorCpuMicros(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // utime(14) stime(15) cutime(16) cstime(17), counted from after the command name as in cpuMicros.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1e6) / CLOCK_TICKS_PER_S;
}

/**
 * CPU time (µs) of `pid` and every descendant alive now: sshd forks a process per connection, so the
 * ssh peer's server side is a tree. Jetty processes have no children, so this is their own time.
 */
export function treeCpuMicros(pid: number): number {
  const procs = new Map<number, { ppid: number; us: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const c = cpuMicros(Number(name));
    if (c) procs.set(Number(name), c);
  }
  let total = 0;
  const want = new Set([pid]);
  // Parents have lower pids only usually; iterate to a fixed point instead of relying on it.
  for (let changed = true; changed; ) {
    changed = false;
    for (const [p, c] of procs) if (!want.has(p) && want.has(c.ppid)) (want.add(p), (changed = true));
  }
  for (const p of want) total += procs.get(p)?.us ?? 0;
  return total;
}

/** Samples RSS of `pids` every 50 ms while `work` runs; growth = peak over the value at the start. */
export async function withRss<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; growth: number[]; base: number[] }> {
  const base = pids.map(rssBytes);
  const peak = [...base];
  const sample = (): void => pids.forEach((p, i) => (peak[i] = Math.max(peak[i], rssBytes(p))));
  const timer = setInterval(sample, 50);
  try {
    const result = await work();
    sample();
    return { result, growth: peak.map((p, i) => p - base[i]), base };
  } finally {
    clearInterval(timer);
  }
}

/** A port free on 127.0.0.1 right now (for ssh -R, which must be told one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` every `intervalMs` until it holds; throws `what` after `timeoutMs` (for conditions with no event, such as a port opening in another process). */
export async function pollUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs: number, intervalMs = 50): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const median = (xs: number[]): number => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);

/** Runs per figure (BENCH_RUNS, default 3). */
export const RUNS = Number(process.env.BENCH_RUNS ?? 3);
