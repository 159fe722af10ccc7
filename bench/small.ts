// Phase `small`: only the small-GET part of `throughput` (13-byte GETs at 50 connections), which is what
// the per-request CPU work is judged on: req/s, p99, errors and edge / agent CPU µs per request for
// direct, ssh -R, two bare Node TCP relays and each Jetty transport, one after the other in each of RUNS rounds, medians.
// BENCH_BASELINE=DIR adds each Jetty transport again from another checkout (DIR/bin/jetty.js, built),
// interleaved in the same rounds: a before/after under the same machine load. BENCH_WARMUP_SECONDS (5).
import { join, resolve } from 'node:path';
import { cpuCeiling, smallGets, smallGetsCpu, count as n, roundFigures, type Peer, type SmallGets } from './load.js';
import { RUNS, startOrigin, startTunnel, stopTunnel, transports, type Tunnel } from './procs.js';
import { startReferencePeers, tunnelPeer, type ReferencePeers } from './reference-peers.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/**
 * Unmeasured load per target before the rounds: a fresh Node process spends its first seconds of load
 * compiling (TurboFan was 30 % of the edge's CPU in the 5 s after a 2 s warm-up, 2 % once warm), which
 * the first round would charge to its requests.
 */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const CONNECTIONS = 50;

interface Round {
  small: SmallGets;
  /** µs of CPU per 2xx request: server side, client side. */
  cpu: [number, number] | null;
  /** µs of CPU per 2xx request: the origin, the load generator. */
  apparatus: [number, number];
}

const round = (p: Peer): Promise<Round> => smallGetsCpu(p, SECONDS, CONNECTIONS);

export async function small(): Promise<string> {
  const origin = await startOrigin();
  let refs: ReferencePeers | undefined;
  const tunnels: Tunnel[] = [];
  const baseline = process.env.BENCH_BASELINE ? resolve(process.env.BENCH_BASELINE) : undefined;
  try {
    refs = await startReferencePeers(origin);
    const { peers, notes } = refs;
    const builds: [string, string | undefined][] = [['', undefined]];
    if (baseline) {
      builds.push([' (baseline)', join(baseline, 'bin/jetty.js')]);
      notes.push(`(baseline) = the build in ${baseline}, measured in the same rounds.`);
    }
    for (const t of transports()) {
      for (const [suffix, bin] of builds) {
        const tun = await startTunnel(origin.port, t, [], bin);
        tunnels.push(tun);
        peers.push(tunnelPeer(`Jetty ${t}${suffix}`, tun, origin.proc.pid));
      }
    }
    for (const p of peers) {
      if (!p.cpuPids || WARMUP_SECONDS <= 0) continue;
      process.stderr.write(`small warm-up: ${p.label}\n`);
      await smallGets(p, WARMUP_SECONDS, CONNECTIONS);
    }
    const rounds = new Map<string, Round[]>(peers.map((p) => [p.label, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const p of peers) {
        process.stderr.write(`small round ${i + 1}/${RUNS}: ${p.label}\n`);
        rounds.get(p.label)!.push(await round(p));
      }
    }
    return table(peers, rounds, notes);
  } finally {
    await Promise.all([...tunnels.map(stopTunnel), refs?.stop(), origin.proc.stop()]);
  }
}

function table(peers: Peer[], rounds: Map<string, Round[]>, notes: string[]): string {
  const { med, ratio } = roundFigures(peers, rounds);
  const lines = [
    `${SECONDS} s of 13-byte GETs at ${CONNECTIONS} connections (${rounds.get(peers[0].label)![0].small.tool}; req/s counts 2xx only), after ${WARMUP_SECONDS} s of unmeasured load per tunnel; CPU µs per request from /proc/PID/stat (server side = edge, sshd or the front relay; client side = agent, ssh or the back relay; the load generator's from its reaped times, with the bench process's own); CPU ceiling = the rate at which all of it together fills every core; medians of ${RUNS}; (×N) = ratio to ssh -R.`,
    '',
    '| | small GETs/s | p99 ms | non-2xx / errors (all runs) | CPU µs/req server / client | CPU µs/req origin / load generator | CPU ceiling req/s |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const p of peers) {
    const rs = rounds.get(p.label)!;
    const bad = `${rs.reduce((a, r) => a + r.small.non2xx, 0)} / ${rs.reduce((a, r) => a + r.small.errors, 0)}`;
    const cpu = p.cpuPids ? `${n(med(p.label, (r) => r.cpu![0]))} / ${n(med(p.label, (r) => r.cpu![1]))}` : '—';
    const [originUs, toolUs] = [0, 1].map((i) => med(p.label, (r) => r.apparatus[i]));
    const all = originUs + toolUs + (p.cpuPids ? med(p.label, (r) => r.cpu![0] + r.cpu![1]) : 0);
    lines.push(`| ${p.label} | ${n(med(p.label, (r) => r.small.rps))}${ratio(p.label, (r) => r.small.rps)} | ${med(p.label, (r) => r.small.p99ms).toFixed(1)} | ${bad} | ${cpu} | ${n(originUs)} / ${n(toolUs)} | ${n(cpuCeiling(all))} |`);
  }
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}
