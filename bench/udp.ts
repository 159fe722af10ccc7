import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median, printTable, RUNS, startProcess, tunnel } from './port-bench.js';
import { treeCpuMicros } from './procs.js';

/**
 * UDP tunnel bench (`node dist/bench/udp.js`): 512-byte datagrams to an echo origin through `jetty
 * udp` over gRPC and WebSocket and directly, for BENCH_SECONDS (default 3) per run: first in a closed
 * loop (BENCH_UDP_WINDOW, default 256, in flight: what the path carries when the sender waits for
 * it, and a CPU cost per datagram that loss does not distort), then offered at fixed rates
 * (BENCH_UDP_RATES); reports echoes received per second, the loss (datagrams sent but never echoed) and the
 * CPU time the edge and the agent spent per echoed datagram (utime + stime from /proc, each
 * datagram crossing both processes twice: there and back), and the echo origin's beside it (one
 * receive and one send per datagram: the floor of a process that relays datagrams). "kernel drops"
 * are the datagrams the kernel discarded because a socket's receive buffer was full during the run,
 * per socket (the `drops` column of /proc/net/udp): the edge's public port, the agent's socket to the
 * origin, the echo origin's, the load generator's (which reports its own before closing).
 *
 * The echo origin and the load generator are processes of their own (bench/udp-peer.ts), fresh
 * for each run of the load: in one process with the bench they were the limit at 50,000/s.
 * BENCH_CPU_PROF=DIR writes `--cpu-prof` profiles of the edges and agents to DIR.
 */

const SECONDS = Number(process.env.BENCH_SECONDS) || 3;
const RATES = (process.env.BENCH_UDP_RATES ?? '10000,25000,50000').split(',').filter(Boolean).map(Number);
/** Closed-loop runs: this many datagrams in flight (BENCH_UDP_WINDOW; 0 = none). */
const WINDOW = Number(process.env.BENCH_UDP_WINDOW ?? 256);
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'grpc,websocket').split(',').filter(Boolean);
const PEER = fileURLToPath(new URL('./udp-peer.js', import.meta.url));

interface Run {
  received: number;
  loss: number;
  /** Datagrams the kernel dropped at a full receive buffer, % of those sent: edge, agent, echo, client. */
  drops: number[];
  /** CPU µs per echoed datagram: edge and agent (NaN for direct), echo origin. */
  edgeUs: number;
  agentUs: number;
  echoUs: number;
}

/**
 * Receive-buffer drops of the bench's sockets now (/proc/net/udp, IPv4): [edge, agent, echo], told
 * apart by port: the edge's public `port`, the agent's socket connected to `echoPort`, the echo's own.
 */
function socketDrops(port: number | undefined, echoPort: number): number[] {
  const out = [0, 0, 0];
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const local = parseInt(f[1].split(':')[1], 16);
    const remote = parseInt(f[2].split(':')[1], 16);
    const drops = Number(f[f.length - 1]);
    if (local === port) out[0] += drops;
    else if (remote === echoPort) out[1] += drops;
    else if (local === echoPort) out[2] += drops;
  }
  return out;
}

/**
 * One run of the load generator against `port`: `rate` datagrams/s offered, or with `closed` a window
 * of `rate` datagrams in flight. The CPU time of `pids` (echo origin, and the tunnel's edge and
 * agent) is read around it.
 */
async function offer(port: number, rate: number, pids: { echo: number; edge?: number; agent?: number }, closed = false): Promise<Run> {
  const cpu = (): number[] => [pids.edge, pids.agent, pids.echo].map((p) => (p ? treeCpuMicros(p) : NaN));
  const tunnelPort = pids.edge ? port : undefined;
  const before = cpu();
  const dropsBefore = socketDrops(tunnelPort, echoPort);
  const { match } = await startProcess([PEER, closed ? 'window' : 'load', String(port), String(rate), String(SECONDS)], /(\{.*\})\n/);
  const after = cpu();
  const dropsAfter = socketDrops(tunnelPort, echoPort);
  const { sent, received, drops, rate: carried } = JSON.parse(match[1]) as { sent: number; received: number; drops: number; rate?: number };
  const per = (i: number): number => (received ? (after[i] - before[i]) / received : NaN);
  return {
    received: carried ?? received / SECONDS,
    loss: (100 * (sent - received)) / sent,
    drops: [...dropsAfter.map((d, i) => d - dropsBefore[i]), drops].map((d) => (100 * d) / sent),
    edgeUs: per(0),
    agentUs: per(1),
    echoUs: per(2),
  };
}

const echo = await startProcess([PEER, 'echo'], /udp-echo (\d+)/);
const echoPort = Number(echo.match[1]);
const targets: Array<{ name: string; port: number; tunnel?: Awaited<ReturnType<typeof tunnel>> }> = [{ name: 'direct', port: echoPort }];
for (const transport of TRANSPORTS) {
  const t = await tunnel('udp', echoPort, '29600-29609', transport);
  targets.push({ name: `jetty udp ${transport}`, port: t.port, tunnel: t });
}
const rows: Array<[string, ...number[]]> = [];
const loads: Array<[string, number, boolean]> = [...(WINDOW ? [[`${WINDOW} in flight`, WINDOW, true] as [string, number, boolean]] : []), ...RATES.map((r): [string, number, boolean] => [`${r}/s offered`, r, false])];
for (const [label, rate, closed] of loads) {
  const runs: Run[][] = targets.map(() => []);
  // Rounds: every target once per round, so a change in the machine's load touches all of them alike.
  for (let i = 0; i < RUNS; i++) for (const [j, t] of targets.entries()) runs[j].push(await offer(t.port, rate, { echo: echo.child.pid!, ...t.tunnel?.pids }, closed));
  const med = (f: (r: Run) => number): number[] => runs.map((rs) => median(rs.map(f)));
  rows.push(
    [`${label}: received/s`, ...med((r) => Math.round(r.received))],
    [`${label}: loss %`, ...med((r) => r.loss)],
    ...['edge', "agent's", 'echo', 'client'].map((where, i): [string, ...number[]] => [`${label}: kernel drops at ${where} socket %`, ...med((r) => r.drops[i])]),
    [`${label}: edge CPU µs/datagram`, ...med((r) => r.edgeUs)],
    [`${label}: agent CPU µs/datagram`, ...med((r) => r.agentUs)],
    [`${label}: echo origin CPU µs/datagram`, ...med((r) => r.echoUs)],
  );
}
await Promise.all(targets.map((t) => t.tunnel?.stop()));
echo.child.kill('SIGTERM');
printTable(`UDP tunnel, 512-byte datagrams to an echo origin, ${SECONDS} s per rate, ${RUNS} runs`, targets.map((t) => t.name), rows);
process.exit(0);
