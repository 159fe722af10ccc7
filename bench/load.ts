// The load generators every target gets alike: curl for transfers (downloads size- or SHA-256-checked,
// uploads checked at the origin), wrk (or autocannon when wrk is missing) for small GETs.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { MB, loadGeneratorCpuMicros, median, tempDir, track, treeCpuMicros } from './procs.js';

/** The block the origin repeats in /bytes (bench/origin.ts): 64 KiB of 'x'. */
const ORIGIN_BLOCK = Buffer.alloc(64 * 1024, 120);
/** Largest body of stdout or stderr kept from a load generator. */
const MAX_TOOL_OUTPUT_BYTES = 1 << 20;

/** Where to send requests: the URL base and the Host header that selects the tunnel. */
export interface Target {
  base: string;
  host: string;
}

interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion (tracked, so Ctrl-C kills it too), keeping bounded output. */
function runTool(cmd: string, args: string[]): Promise<ToolResult> {
  // A shell pipeline runs as its own process group, so an interrupted bench kills curl and sha256sum too.
  const group = cmd === 'sh';
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: group }), group);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-MAX_TOOL_OUTPUT_BYTES)));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-MAX_TOOL_OUTPUT_BYTES)));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function hasTool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** SHA-256 of the first `n` bytes of the origin's /bytes body. */
export function originBodySha256(n: number): string {
  const h = createHash('sha256');
  for (let left = n; left > 0; left -= ORIGIN_BLOCK.length) h.update(left >= ORIGIN_BLOCK.length ? ORIGIN_BLOCK : ORIGIN_BLOCK.subarray(0, left));
  return h.digest('hex');
}

/** 1 GiB download with curl to /dev/null; fails unless HTTP 200 and every byte arrived. Returns MB/s. */
export async function download(t: Target, bytes: number): Promise<number> {
  const r = await runTool('curl', ['-sS', '-o', '/dev/null', '-w', '%{speed_download} %{size_download} %{http_code}', '-H', `Host: ${t.host}`, `${t.base}/bytes?n=${bytes}`]);
  const [speed, size, code] = r.stdout.trim().split(' ').map(Number);
  if (code !== 200 || size !== bytes) throw new Error(`download via ${t.base}: HTTP ${code}, ${size} of ${bytes} bytes; ${r.stderr.trim()}`);
  return speed / MB;
}

/** A download piped through sha256sum, checked against the origin's body: status, size and hash. */
export async function checkedDownload(t: Target, bytes: number, want: string): Promise<{ seconds: number }> {
  // The pipe is the shell's: curl's body straight into sha256sum, curl's figures on stderr.
  const pipeline = 'curl -sS -o - -w "%{stderr}%{time_total} %{size_download} %{http_code}" -H "Host: $1" "$2" | sha256sum';
  const r = await runTool('sh', ['-c', pipeline, 'sh', t.host, `${t.base}/bytes?n=${bytes}`]);
  const [seconds, size, code] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
  const got = r.stdout.split(' ')[0];
  if (code !== 200 || size !== bytes || got !== want) {
    throw new Error(`checked download via ${t.base}: HTTP ${code}, ${size} of ${bytes} bytes, sha256 ${got === want ? 'ok' : 'MISMATCH'}; ${r.stderr.trim()}`);
  }
  return { seconds };
}

/** A sparse file of `bytes` zeros to upload (removed with the bench's temp dirs) and its SHA-256. */
export function uploadFile(bytes: number): { path: string; sha256: string } {
  const path = join(tempDir('jetty-bench-upload-'), 'upload.bin');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
  const h = createHash('sha256');
  const zeros = Buffer.alloc(1 << 20);
  for (let left = bytes; left > 0; left -= zeros.length) h.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
  return { path, sha256: h.digest('hex') };
}

/** Upload with curl -T (streams the file); fails unless the origin answered 200 with the right count and SHA-256. */
export async function upload(t: Target, file: { path: string; sha256: string }, bytes: number): Promise<number> {
  const r = await runTool('curl', ['-sS', '-X', 'POST', '-H', 'Content-Type: application/octet-stream', '-H', `Host: ${t.host}`, '-T', file.path, '-w', '\n%{speed_upload} %{http_code}', `${t.base}/sink`]);
  const lines = r.stdout.trim().split('\n');
  const [speed, code] = lines.at(-1)!.split(' ').map(Number);
  let seen: { bytes?: number; sha256?: string } = {};
  try {
    seen = JSON.parse(lines.slice(0, -1).join('\n'));
  } catch {
    // Judged below: the origin's answer is missing.
  }
  if (code !== 200 || seen.bytes !== bytes || seen.sha256 !== file.sha256) {
    throw new Error(`upload via ${t.base}: HTTP ${code}; origin saw ${seen.bytes} of ${bytes} bytes, sha256 ${seen.sha256 === file.sha256 ? 'ok' : 'MISMATCH'}; ${r.stderr.trim()}`);
  }
  return speed / MB;
}

export interface SmallGets {
  /** 2xx answers per second (errors and non-2xx excluded). */
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  p99ms: number;
  tool: string;
}

/** `1.50ms`, `250.00us`, `1.02s`, `2.00m` to ms. */
function wrkMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3, m: 60e3 }[m[2] as 'us']!;
}

/** Small GETs at `connections` connections for `seconds`: wrk -t1 from Debian, else autocannon in-process. */
export async function smallGets(t: Target, seconds: number, connections = 50): Promise<SmallGets> {
  if (hasTool('wrk')) {
    const r = await runTool('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Host: ${t.host}`, `${t.base}/small`]);
    if (r.code !== 0) throw new Error(`wrk failed: ${r.stderr.trim()}`);
    const total = Number(/(\d+) requests in ([\d.]+)(ms|s|m)/.exec(r.stdout)?.[1] ?? NaN);
    const dur = /\d+ requests in ([\d.]+\w+)/.exec(r.stdout)?.[1] ?? '';
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
    const errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
    const p99 = wrkMs(/^\s+99%\s+(\S+)/m.exec(r.stdout)?.[1] ?? '');
    const ok = total - non2xx;
    return { rps: ok / (wrkMs(dur) / 1000), ok, non2xx, errors, p99ms: p99, tool: 'wrk -t1' };
  }
  const c = await autocannon({ url: `${t.base}/small`, connections, duration: seconds, headers: { host: t.host } });
  return { rps: c['2xx'] / c.duration, ok: c['2xx'], non2xx: c.non2xx, errors: c.errors + c.timeouts, p99ms: c.latency.p99, tool: 'autocannon' };
}

/**
 * A target whose CPU the bench charges: server side (edge, sshd tree) and client side (agent, ssh); none
 * for direct. Every target also has the origin behind it, whose CPU is charged with the load generators'.
 */
export interface Peer extends Target {
  label: string;
  cpuPids: [number, number] | null;
  originPid: number;
}

/** µs of CPU during one measure: the peer's two sides (null for direct), and what the apparatus spent. */
export interface CpuSpent {
  micros: [number, number] | null;
  /** The origin, and the load generators with the bench process itself. */
  apparatus: [number, number];
}

/** `work`'s result and the µs of CPU each side of `p`, the origin and the load generators spent during it. */
export async function cpuSpent<T>(p: Peer, work: () => Promise<T>): Promise<{ result: T } & CpuSpent> {
  const before = p.cpuPids?.map(treeCpuMicros);
  const apparatusBefore = [treeCpuMicros(p.originPid), loadGeneratorCpuMicros()];
  const result = await work();
  const after = p.cpuPids?.map(treeCpuMicros);
  const apparatus: [number, number] = [treeCpuMicros(p.originPid) - apparatusBefore[0], loadGeneratorCpuMicros() - apparatusBefore[1]];
  return { result, micros: before && after ? [after[0] - before[0], after[1] - before[1]] : null, apparatus };
}

/** smallGets() and the µs of CPU each side of `p`, and the apparatus, spent per 2xx answer. */
export async function smallGetsCpu(p: Peer, seconds: number, connections: number): Promise<{ small: SmallGets; cpu: [number, number] | null; apparatus: [number, number] }> {
  const { result: small, micros, apparatus } = await cpuSpent(p, () => smallGets(p, seconds, connections));
  const per = (us: number): number => us / Math.max(1, small.ok);
  return { small, cpu: micros ? [per(micros[0]), per(micros[1])] : null, apparatus: [per(apparatus[0]), per(apparatus[1])] };
}

/** Starts a slow reader: curl at `rate` for `seconds` on an endless body. Resolves with bytes read. */
export async function slowReader(t: Target, rate: string, seconds: number): Promise<number> {
  const r = await runTool('curl', ['-s', '-o', '/dev/null', '--limit-rate', rate, '--max-time', String(seconds), '-w', '%{size_download}', '-H', `Host: ${t.host}`, `${t.base}/endless`]);
  return Number(r.stdout.trim());
}

/** The origin's /endless counters. */
export async function originStats(originPort: number): Promise<{ written: number; pauses: number; open: number; aborted: number; waiting: number }> {
  const r = await runTool('curl', ['-sS', `http://127.0.0.1:${originPort}/stats`]);
  return JSON.parse(r.stdout);
}

/**
 * Medians over the rounds of each peer (`med(label, f)`), and a figure's ratio to ssh -R's in the same
 * rounds (`ratio(label, f)`: " (×N)", empty for ssh -R itself or when it did not run).
 */
export function roundFigures<R>(peers: readonly Peer[], rounds: Map<string, R[]>) {
  const med = (label: string, f: (r: R) => number): number => median(rounds.get(label)!.map(f));
  const ref = peers.find((p) => p.label === 'ssh -R');
  const ratio = (label: string, f: (r: R) => number): string => (ref && label !== ref.label ? ` (×${(med(label, f) / med(ref.label, f)).toFixed(2)})` : '');
  return { med, ratio };
}

/** The cores every process of a measure shares (the origin, the load generators, the tunnel). */
export const CORES = availableParallelism();

/**
 * The most units per second this machine's cores could do when one unit costs `perUnitMicros` of CPU
 * over every process involved: what no tunnel can pass, however fast, when its own share is added.
 */
export const cpuCeiling = (perUnitMicros: number): number => (CORES * 1e6) / perUnitMicros;

/** A count for a table: rounded, with thousands separators. */
export const count = (v: number): string => Math.round(v).toLocaleString('en-US');
