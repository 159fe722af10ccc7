// `node dist/bench/h2.js` (after `npm run build`): public h2c small GETs vs HTTP/1.1 small GETs through
// one tunnel (origin, edge and a gRPC agent as separate processes on loopback), medians of RUNS runs.
// HTTP/1.1: autocannon, CONCURRENCY connections. h2c: CONCURRENCY streams in flight on one connection,
// with Node's http2 client in this process (as autocannon runs here too), and with h2load when the
// Debian nghttp2-client package is installed. Prints a markdown table.
// Environment: BENCH_RUNS (3), BENCH_SECONDS (5), BENCH_CONCURRENCY (50).
import { execFile, type ChildProcess } from 'node:child_process';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { start as startProcess } from './spawn-ready.js';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/jetty.js');
const ORIGIN = join(ROOT, 'dist/bench/origin.js');

/** Starts a process (logging at info, as in production), remembered in `started` to be stopped at exit. */
async function start(args: string[], ready: RegExp, started: ChildProcess[]): Promise<RegExpExecArray> {
  const { child, match } = await startProcess(args, ready, { JETTY_LOG_LEVEL: 'info' });
  started.push(child);
  return match;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** HTTP/1.1 small GETs with autocannon; any non-2xx or error fails the run. */
async function http1(port: number, host: string): Promise<number> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/small`, connections: CONCURRENCY, duration: SECONDS, headers: { host } });
  if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`HTTP/1.1: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  return r['2xx'] / r.duration;
}

/** h2c small GETs with Node's http2 client: CONCURRENCY streams kept in flight on one connection for SECONDS. */
async function h2Node(port: number, authority: string): Promise<number> {
  const session = connect(`http://127.0.0.1:${port}`);
  let ok = 0;
  let failed = 0;
  const until = Date.now() + SECONDS * 1000;
  const started = Date.now();
  const loop = async (): Promise<void> => {
    while (Date.now() < until) {
      await new Promise<void>((resolve) => {
        const stream = session.request({ ':path': '/small', ':authority': authority });
        stream.on('response', (h) => (h[':status'] === 200 ? ok++ : failed++));
        stream.on('error', () => failed++);
        stream.resume();
        stream.on('close', resolve);
        stream.end();
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  const seconds = (Date.now() - started) / 1000;
  session.close();
  if (failed > 0) throw new Error(`h2c (node): ${failed} failed streams`);
  return ok / seconds;
}

/** h2c small GETs with h2load (nghttp2-client): one connection, CONCURRENCY streams; undefined when absent. */
async function h2load(port: number, authority: string): Promise<number | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await run('h2load', ['-c', '1', '-m', String(CONCURRENCY), '-D', String(SECONDS), '-H', `:authority: ${authority}`, `http://127.0.0.1:${port}/small`]));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout);
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
  if (!done || !rate) throw new Error(`h2load output not understood:\n${stdout}`);
  if (Number(done[3]) + Number(done[4]) > 0) throw new Error(`h2load: ${done[3]} failed, ${done[4]} errored`);
  return Number(rate[1]);
}

async function main(): Promise<void> {
  const started: ChildProcess[] = [];
  process.on('exit', () => started.forEach((c) => c.kill('SIGTERM')));
  const originPort = Number((await start([ORIGIN, '0'], /origin (\d+)/, started))[1]);
  const port = Number((await start([BIN, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''], /on http:\/\/localhost:(\d+) /, started))[1]);
  await start([BIN, 'http', `127.0.0.1:${originPort}`, '--edge', `http://127.0.0.1:${port}`, '--name', 'bench', '--transport', 'grpc'], /^Forwarding /m, started);
  const authority = `bench.localhost:${port}`;
  const figures: Record<string, number[]> = { 'HTTP/1.1 (autocannon)': [], 'h2c (node http2)': [], 'h2c (h2load)': [] };
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`run ${i + 1}/${RUNS}\n`);
    figures['HTTP/1.1 (autocannon)'].push(await http1(port, authority));
    figures['h2c (node http2)'].push(await h2Node(port, authority));
    const h = await h2load(port, authority);
    if (h !== undefined) figures['h2c (h2load)'].push(h);
  }
  const base = median(figures['HTTP/1.1 (autocannon)']);
  const lines = [
    `Small GETs through one gRPC tunnel, ${CONCURRENCY} in flight, ${SECONDS} s per run, median of ${RUNS}; ${new Date().toISOString()}`,
    '',
    '| client | req/s | vs HTTP/1.1 |',
    '|---|---|---|',
  ];
  for (const [label, xs] of Object.entries(figures)) {
    if (xs.length === 0) lines.push(`| ${label} | not installed | |`);
    else lines.push(`| ${label} | ${median(xs).toFixed(0)} | ${(median(xs) / base).toFixed(2)} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  started.forEach((c) => c.kill('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
