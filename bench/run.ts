// `npm run bench [-- --only PHASE[,PHASE] | --all]`: each phase measures with its own processes on
// loopback and prints a markdown table. Phases written here run in this process; the others are
// standalone scripts (dist/bench/NAME.js) run as children, reported as "not built" when absent.
// Default: every phase not marked large. A failed phase fails the bench (exit 1) after the others ran.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { memory } from './memory.js';
import { ROOT, track } from './procs.js';
import { sessions } from './sessions.js';
import { small } from './small.js';
import { sse } from './sse.js';
import { throughput } from './throughput.js';

interface Phase {
  name: string;
  what: string;
  /** Rough duration on this machine; large phases run only when asked for. */
  takes: string;
  large?: boolean;
  run?: () => Promise<string>;
}

/** Every phase, in running order. Scripts without `run` are dist/bench/NAME.js of other modules. */
export const PHASES: readonly Phase[] = [
  { name: 'throughput', what: 'direct, ssh -R, two bare Node TCP relays, Jetty per transport: 1 GiB down/up, small GETs, 20 × 100 MiB, CPU per request and what the cores allow', takes: '6–9 min', run: throughput },
  { name: 'small', what: 'direct, ssh -R, two bare Node TCP relays, Jetty per transport: 13-byte GETs only, req/s, p99, CPU µs per request (BENCH_BASELINE=DIR: and that build)', takes: '≈ 1.5 min', large: true, run: small },
  { name: 'memory', what: 'fresh edge+agent per scenario: idle RSS, start-up, slow readers, 1 GiB growth (BENCH_BASELINE=DIR: and that build)', takes: '4–5.5 min', run: memory },
  { name: 'sessions', what: 'edge RSS per idle agent session, 1,000 sessions per transport', takes: '≈ 15 s', large: true, run: sessions },
  { name: 'sse', what: '2,000 open SSE exchanges across 20 agents: edge growth, event latency p99', takes: '35–60 s', large: true, run: sse },
  { name: 'websocket', what: 'standalone WebSocket bench (bench/websocket.ts)', takes: 'see its script' },
  { name: 'h2', what: 'standalone HTTP/2 bench (bench/h2.ts)', takes: 'see its script' },
  { name: 'grpc-origin', what: 'standalone gRPC-origin bench (bench/grpc-origin.ts)', takes: 'see its script' },
  { name: 'tcp', what: 'standalone TCP bench (bench/tcp.ts)', takes: 'see its script' },
  { name: 'udp', what: 'standalone UDP bench (bench/udp.ts)', takes: 'see its script' },
  { name: 'cluster', what: '3 edges + Redis + HAProxy: right vs wrong edge, Redis commands per request, SIGKILL recovery (bench/cluster.ts)', takes: '≈ 4 min', large: true },
];

function script(name: string): string {
  return join(ROOT, 'dist/bench', `${name}.js`);
}

/** Runs a standalone phase script; its stdout is its table. */
function runScript(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [script(name)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out.trimEnd()) : reject(new Error(`dist/bench/${name}.js exited ${code}`))));
  });
}

function selected(argv: string[]): Phase[] {
  const i = argv.indexOf('--only');
  if (argv.includes('--list')) {
    for (const p of PHASES) process.stdout.write(`${p.name.padEnd(12)} ${p.large ? '(large) ' : ''}${p.takes.padEnd(16)} ${p.what}\n`);
    process.exit(0);
  }
  if (i >= 0) {
    const names = (argv[i + 1] ?? '').split(',').filter(Boolean);
    const unknown = names.filter((n) => !PHASES.some((p) => p.name === n));
    if (!names.length || unknown.length) {
      process.stderr.write(`bench: --only wants phase names from: ${PHASES.map((p) => p.name).join(', ')}${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}\n`);
      process.exit(2);
    }
    return PHASES.filter((p) => names.includes(p.name));
  }
  return PHASES.filter((p) => argv.includes('--all') || !p.large);
}

async function main(): Promise<number> {
  const phases = selected(process.argv.slice(2));
  let failed = 0;
  process.stdout.write(`Jetty bench, ${new Date().toISOString()}, Node ${process.version}\n`);
  for (const p of phases) {
    process.stdout.write(`\n## ${p.name}\n\n`);
    if (!p.run && !existsSync(script(p.name))) {
      process.stdout.write(`not built (no dist/bench/${p.name}.js)\n`);
      continue;
    }
    const t0 = performance.now();
    try {
      const out = p.run ? await p.run() : await runScript(p.name);
      process.stdout.write(`${out}\n\n(${p.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    } catch (err) {
      failed++;
      process.stdout.write(`FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);
