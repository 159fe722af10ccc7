// `npm run soak -- --minutes N`: a long mixed load through one edge and one agent (real processes on
// loopback): small GETs, 64 MiB downloads, server-sent events, clients that abort mid-response, and
// an agent restart (SIGTERM, new agent) every minute. Prints, per minute, requests and failures by
// cause, RSS and open file descriptors of edge and agent; at the end the edge's RSS slope after the
// first minute (warm-up). Exits 1 if any request failed that was not aborted by its own client.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createToken } from '../src/edge/tokens.js';
import { start } from './spawn-ready.js';

const MINUTES = Number(argValue('--minutes') ?? 5);
const SMALL_CLIENTS = 16;
const BIG_BYTES = 64 * 1024 * 1024;
const SSE_EVENTS = 20;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/jetty.js');
const ORIGIN = join(ROOT, 'dist/bench/origin.js');

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

const counts = { ok: 0, aborted: 0, failures: new Map<string, number>() };
const fail = (cause: string): void => void counts.failures.set(cause, (counts.failures.get(cause) ?? 0) + 1);

/** One request; `check` judges the complete response, `abortAfter` cuts it on purpose after that many bytes. */
function once(port: number, path: string, check: (status: number, bytes: number, body: string) => string | undefined, abortAfter?: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'soak.localhost' }, agent: false });
    let settled = false;
    const done = (cause: string | undefined): void => {
      if (settled) return;
      settled = true;
      if (cause === undefined) counts.ok++;
      else if (cause === 'aborted by its client') counts.aborted++;
      else fail(cause);
      resolve();
    };
    req.on('error', (err: NodeJS.ErrnoException) => done(`socket ${err.code ?? err.message}`));
    req.on('response', (res: IncomingMessage) => {
      let bytes = 0;
      let text = '';
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (d.length < 4096) text += d.toString();
        if (abortAfter !== undefined && bytes >= abortAfter) {
          req.destroy();
          done('aborted by its client');
        }
      });
      res.on('aborted', () => done('response cut'));
      res.on('error', () => done('response cut'));
      res.on('end', () => done(res.complete ? check(res.statusCode ?? 0, bytes, text) : 'response cut'));
    });
    req.end();
  });
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const stopAll = (): void => children.forEach((c) => c.kill('SIGKILL'));
  process.on('exit', stopAll);
  process.on('SIGINT', () => process.exit(130));
  const origin = await start([ORIGIN, '0'], /origin (\d+)/);
  children.push(origin.child);
  const originPort = Number(origin.match[1]);
  // A token, so that the old and the new agent of a restart form a pool (a rolling restart, as in a deploy).
  const dir = mkdtempSync(join(tmpdir(), 'jetty-soak-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const token = createToken();
  const config = join(dir, 'edge.yaml');
  writeFileSync(config, `tokens:\n  - hash: ${token.hash}\n    names: [soak]\n`);
  const edge = await start([BIN, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--config', config], /on https?:\/\/localhost:(\d+) /);
  children.push(edge.child);
  const port = Number(edge.match[1]);
  const startAgent = async (): Promise<ChildProcess> => {
    const a = await start([BIN, 'http', String(originPort), '--edge', `http://127.0.0.1:${port}`, '--name', 'soak'], /^Forwarding /m, { JETTY_TOKEN: token.token });
    children.push(a.child);
    return a.child;
  };
  let agent = await startAgent();
  const deadline = Date.now() + MINUTES * 60_000;
  const loop = async (fn: () => Promise<void>): Promise<void> => {
    while (Date.now() < deadline) await fn();
  };
  const small = () => once(port, '/small', (s, _b, t) => (s === 200 && t === 'hello, world\n' ? undefined : `small: HTTP ${s}, ${JSON.stringify(t.slice(0, 20))}`));
  const big = () => once(port, `/bytes?n=${BIG_BYTES}`, (s, b) => (s === 200 && b === BIG_BYTES ? undefined : `64 MiB: HTTP ${s}, ${b} bytes`));
  const sse = () => once(port, `/sse?n=${SSE_EVENTS}&ms=50`, (s, _b, t) => ((t.match(/^data: /gm) ?? []).length === SSE_EVENTS && s === 200 ? undefined : `sse: HTTP ${s}, ${(t.match(/^data: /gm) ?? []).length} events`));
  const abort = () => once(port, '/endless', () => 'endless: ended by itself', 256 * 1024);
  const loops = [
    ...Array.from({ length: SMALL_CLIENTS }, () => loop(small)),
    loop(big),
    loop(sse),
    loop(sse),
    loop(abort),
  ];
  const samples: Array<{ minute: number; edgeRss: number }> = [];
  process.stdout.write('| minute | ok | aborted | failed | edge RSS MiB | agent RSS MiB | edge fds | agent fds |\n|---|---|---|---|---|---|---|---|\n');
  for (let minute = 1; minute <= MINUTES; minute++) {
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(60_000, deadline - Date.now()))));
    const failed = [...counts.failures.values()].reduce((a, b) => a + b, 0);
    const edgeRss = rssMiB(edge.child.pid!);
    samples.push({ minute, edgeRss });
    const causes = [...counts.failures].map(([c, n]) => `${n} × ${c}`).join('; ');
    process.stdout.write(`| ${minute} | ${counts.ok} | ${counts.aborted} | ${failed}${causes ? ` (${causes})` : ''} | ${edgeRss.toFixed(1)} | ${rssMiB(agent.pid!).toFixed(1)} | ${fds(edge.child.pid!)} | ${fds(agent.pid!)} |\n`);
    if (minute < MINUTES) {
      // The agent restarts as in a deploy: SIGTERM (it drains), and a new one takes over.
      const next = startAgent();
      agent.kill('SIGTERM');
      agent = await next;
    }
  }
  await Promise.all(loops);
  const warm = samples.filter((s) => s.minute > 1);
  const slope = warm.length >= 2 ? linearSlope(warm.map((s) => s.minute), warm.map((s) => s.edgeRss)) : 0;
  process.stdout.write(`\nfailures by cause: ${[...counts.failures].map(([c, n]) => `${n} × ${c}`).join('; ') || 'none'}\n`);
  process.stdout.write(`edge RSS slope after warm-up: ${(slope * 60).toFixed(2)} MiB/hour\n`);
  stopAll();
  process.exit(counts.failures.size > 0 ? 1 : 0);
}

function linearSlope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${String(err)}\n`);
  process.exit(1);
});
