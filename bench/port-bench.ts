import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { start } from './spawn-ready.js';

/**
 * What bench/tcp.ts and bench/udp.ts share: an edge and an agent as real processes on 127.0.0.1, the
 * median of runs, and a table. Processes are ended by their PIDs.
 */

export const JETTY = fileURLToPath(new URL('../../bin/jetty.js', import.meta.url));
export const RUNS = Number(process.env.BENCH_RUNS) || 3;

const running: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of running) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Starts `node args…` (stderr shown) and resolves with the first stdout match of `re`; ended on exit. */
export async function startProcess(args: string[], re: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const started = start(args, re, {}, 'inherit');
  return started.then((p) => (running.push(p.child), p));
}

/**
 * Node flags for the edge and agent: BENCH_CPU_PROF=DIR runs both under `--cpu-prof`, the profiles
 * written to DIR when stop() ends them (SIGTERM is a clean exit).
 */
const nodeFlags = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

/** Resolves when `child` has exited (at once if it has). */
function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

export interface PortTunnel {
  /** The tunnel's public port. */
  port: number;
  /** PIDs of the edge and the agent, to read their CPU time. */
  pids: { edge: number; agent: number };
  /** Ends the agent and the edge (SIGTERM) and resolves once both have exited. */
  stop: () => Promise<void>;
}

/** An edge offering `kind` ports and an agent for `target`. */
export async function tunnel(kind: 'tcp' | 'udp', target: number, ports: string, transport: string): Promise<PortTunnel> {
  const edge = await startProcess([...nodeFlags, JETTY, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', `--${kind}-ports`, ports], /Jetty edge on http:\/\/localhost:(\d+) /);
  const agent = await startProcess([...nodeFlags, JETTY, kind, String(target), '--edge', `http://127.0.0.1:${edge.match[1]}`, '--transport', transport], new RegExp(`Forwarding ${kind}://localhost:(\\d+) `));
  return {
    port: Number(agent.match[1]),
    pids: { edge: edge.child.pid!, agent: agent.child.pid! },
    stop: async () => {
      agent.child.kill('SIGTERM');
      edge.child.kill('SIGTERM');
      await Promise.all([exited(agent.child), exited(edge.child)]);
    },
  };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs `fn` RUNS times and returns the median. */
export async function medianOf(fn: () => Promise<number>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await fn());
  return median(out);
}

/** Prints a markdown table: one row per metric, one column per target. */
export function printTable(title: string, columns: string[], rows: Array<[string, ...number[]]>): void {
  process.stdout.write(`\n${title}; median of ${RUNS} runs; ${new Date().toISOString()}\n\n`);
  process.stdout.write(`| metric | ${columns.join(' | ')} |\n|---|${columns.map(() => '---').join('|')}|\n`);
  for (const [name, ...values] of rows) process.stdout.write(`| ${name} | ${values.map((v) => (Number.isNaN(v) ? '—' : Number.isInteger(v) ? String(v) : v.toFixed(2))).join(' | ')} |\n`);
}
