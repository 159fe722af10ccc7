// Phase `throughput`: direct, ssh -R, two bare Node TCP relays (the floor of a two-process Node tunnel) and
// each Jetty transport, same origin, same curl and load generator, one after the other in each of RUNS
// rounds; medians, with ratios to ssh -R, and what the machine's cores allow each of them.
// Environment: BENCH_GIB (1), BENCH_SECONDS (5, small GETs), BENCH_PARALLEL (20) × BENCH_PARALLEL_MIB (100).
import { CORES, checkedDownload, cpuCeiling, cpuSpent, download, originBodySha256, smallGetsCpu, upload, uploadFile, count as n, roundFigures, type Peer, type SmallGets } from './load.js';
import { MB, MIB, RUNS, startOrigin, startTunnel, stopTunnel, transports, type Tunnel } from './procs.js';
import { startReferencePeers, tunnelPeer, type ReferencePeers } from './reference-peers.js';

const GIB = Number(process.env.BENCH_GIB ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 20);
const PARALLEL_MIB = Number(process.env.BENCH_PARALLEL_MIB ?? 100);
const CONNECTIONS = 50;

interface Round {
  down: number;
  up: number;
  small: SmallGets;
  parallel: number;
  /** µs of CPU per 2xx small request: server side, client side. */
  cpu: [number, number] | null;
  /** CPU seconds per GiB moved, server side and client side: 1 GiB down, 1 GiB up, 20 × 100 MiB. */
  bulkCpu: { down: [number, number]; up: [number, number]; parallel: [number, number] } | null;
  /** The origin's and the load generators' CPU: µs per small request, s per GiB of 20 × 100 MiB. */
  apparatus: { small: [number, number]; parallel: [number, number] };
}

/** `work`'s result and the CPU seconds the peer's two sides, and the apparatus, spent per GiB of `bytes` during it. */
async function cpuPerGib<T>(p: Peer, bytes: number, work: () => Promise<T>): Promise<{ result: T; cpu: [number, number] | null; apparatus: [number, number] }> {
  const { result, micros, apparatus } = await cpuSpent(p, work);
  const perGib = (us: number): number => us / 1e6 / (bytes / 1024 ** 3);
  return { result, cpu: micros ? [perGib(micros[0]), perGib(micros[1])] : null, apparatus: [perGib(apparatus[0]), perGib(apparatus[1])] };
}

async function round(p: Peer, bytes: number, file: { path: string; sha256: string }, parallelBytes: number, parallelSha: string): Promise<Round> {
  const down = await cpuPerGib(p, bytes, () => download(p, bytes));
  const up = await cpuPerGib(p, bytes, () => upload(p, file, bytes));
  const { small, cpu, apparatus } = await smallGetsCpu(p, SECONDS, CONNECTIONS);
  const t0 = performance.now();
  const par = await cpuPerGib(p, PARALLEL * parallelBytes, () => Promise.all(Array.from({ length: PARALLEL }, () => checkedDownload(p, parallelBytes, parallelSha))));
  const parallel = (PARALLEL * parallelBytes) / MB / ((performance.now() - t0) / 1000);
  const bulkCpu = down.cpu && up.cpu && par.cpu ? { down: down.cpu, up: up.cpu, parallel: par.cpu } : null;
  return { down: down.result, up: up.result, small, parallel, cpu, bulkCpu, apparatus: { small: apparatus, parallel: par.apparatus } };
}

export async function throughput(): Promise<string> {
  const bytes = Math.round(GIB * 1024 ** 3);
  const parallelBytes = PARALLEL_MIB * MIB;
  process.stderr.write('throughput: hashing the upload file and the origin body\n');
  const file = uploadFile(bytes);
  const parallelSha = originBodySha256(parallelBytes);
  const origin = await startOrigin();
  let refs: ReferencePeers | undefined;
  const tunnels: Tunnel[] = [];
  try {
    refs = await startReferencePeers(origin);
    const { peers, notes } = refs;
    for (const t of transports()) {
      const tun = await startTunnel(origin.port, t);
      tunnels.push(tun);
      peers.push(tunnelPeer(`Jetty ${t}`, tun, origin.proc.pid));
    }
    const rounds = new Map<string, Round[]>(peers.map((p) => [p.label, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const p of peers) {
        process.stderr.write(`throughput round ${i + 1}/${RUNS}: ${p.label}\n`);
        rounds.get(p.label)!.push(await round(p, bytes, file, parallelBytes, parallelSha));
      }
    }
    return table(peers, rounds, notes);
  } finally {
    await Promise.all([...tunnels.map(stopTunnel), refs?.stop(), origin.proc.stop()]);
  }
}

function table(peers: Peer[], rounds: Map<string, Round[]>, notes: string[]): string {
  const { med, ratio } = roundFigures(peers, rounds);
  const tool = rounds.get(peers[0].label)![0].small.tool;
  const lines = [
    `${GIB} GiB down/up with curl (uploads checked at the origin: status, bytes, SHA-256); ${SECONDS} s of 13-byte GETs at ${CONNECTIONS} connections (${tool}; req/s counts 2xx only); ${PARALLEL} × ${PARALLEL_MIB} MiB concurrent curl downloads, each body SHA-256-checked (aggregate MB/s); CPU µs per small request and CPU s per GiB transferred from /proc/PID/stat (server side = edge, sshd or the front relay; client side = agent, ssh or the back relay); medians of ${RUNS}; (×N) = ratio to ssh -R.`,
    '',
    `| | ${GIB} GiB down MB/s | ${GIB} GiB up MB/s | small GETs/s | p99 ms | non-2xx / errors (all runs) | ${PARALLEL} × ${PARALLEL_MIB} MiB MB/s | CPU µs/req server / client | CPU s/GiB server / client: down · up · ${PARALLEL} × ${PARALLEL_MIB} MiB |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of peers) {
    const rs = rounds.get(p.label)!;
    const bad = `${rs.reduce((a, r) => a + r.small.non2xx, 0)} / ${rs.reduce((a, r) => a + r.small.errors, 0)}`;
    const cpu = p.cpuPids ? `${n(med(p.label, (r) => r.cpu![0]))} / ${n(med(p.label, (r) => r.cpu![1]))}` : '—';
    const s2 = (f: (r: Round) => [number, number]): string => `${med(p.label, (r) => f(r)[0]).toFixed(2)} / ${med(p.label, (r) => f(r)[1]).toFixed(2)}`;
    const bulk = p.cpuPids ? [s2((r) => r.bulkCpu!.down), s2((r) => r.bulkCpu!.up), s2((r) => r.bulkCpu!.parallel)].join(' · ') : '—';
    lines.push(
      `| ${p.label} | ${n(med(p.label, (r) => r.down))}${ratio(p.label, (r) => r.down)} | ${n(med(p.label, (r) => r.up))}${ratio(p.label, (r) => r.up)} | ${n(med(p.label, (r) => r.small.rps))}${ratio(p.label, (r) => r.small.rps)} | ${med(p.label, (r) => r.small.p99ms).toFixed(1)} | ${bad} | ${n(med(p.label, (r) => r.parallel))}${ratio(p.label, (r) => r.parallel)} | ${cpu} | ${bulk} |`,
    );
  }
  lines.push('', ...ceilings(peers, rounds));
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}

/**
 * What the machine's cores allow each peer: its CPU per small request and per GiB of the parallel
 * downloads, the tunnel's two sides and the apparatus's (origin, load generators), and the rate at which
 * their sum fills every core. No tunnel passes more than its row's ceiling here, whatever it is made of.
 */
function ceilings(peers: Peer[], rounds: Map<string, Round[]>): string[] {
  const { med } = roundFigures(peers, rounds);
  const lines = [
    `What ${CORES} cores allow (CPU from /proc/PID/stat; apparatus = the origin, and the load generators with the bench process, from their reaped children's times; ceiling = the rate at which the sum of the columns fills every core):`,
    '',
    `| | CPU µs/req tunnel (both sides) / origin / load generators | small GETs/s: measured · CPU ceiling | CPU s/GiB ${PARALLEL} × ${PARALLEL_MIB} MiB tunnel / origin / load generators | MB/s: measured · CPU ceiling |`,
    '|---|---|---|---|---|',
  ];
  for (const p of peers) {
    const tunnelUs = p.cpuPids ? med(p.label, (r) => r.cpu![0] + r.cpu![1]) : 0;
    const tunnelS = p.cpuPids ? med(p.label, (r) => r.bulkCpu!.parallel[0] + r.bulkCpu!.parallel[1]) : 0;
    const [originUs, toolsUs] = [0, 1].map((i) => med(p.label, (r) => r.apparatus.small[i]));
    const [originS, toolsS] = [0, 1].map((i) => med(p.label, (r) => r.apparatus.parallel[i]));
    const gibPerMb = 1024 ** 3 / MB;
    lines.push(
      `| ${p.label} | ${p.cpuPids ? n(tunnelUs) : '—'} / ${n(originUs)} / ${n(toolsUs)} | ${n(med(p.label, (r) => r.small.rps))} · ${n(cpuCeiling(tunnelUs + originUs + toolsUs))} | ${p.cpuPids ? tunnelS.toFixed(2) : '—'} / ${originS.toFixed(2)} / ${toolsS.toFixed(2)} | ${n(med(p.label, (r) => r.parallel))} · ${n((cpuCeiling((tunnelS + originS + toolsS) * 1e6) * gibPerMb))} |`,
    );
  }
  return lines;
}
