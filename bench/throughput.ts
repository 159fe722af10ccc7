// Phase `throughput`: direct, ssh -R and each Jetty transport, same origin, same curl and load generator,
// one after the other in each of RUNS rounds; medians, with ratios to ssh -R.
// Environment: BENCH_GIB (1), BENCH_SECONDS (5, small GETs), BENCH_PARALLEL (20) × BENCH_PARALLEL_MIB (100).
import { checkedDownload, cpuSpent, download, originBodySha256, smallGetsCpu, upload, uploadFile, count as n, roundFigures, type Peer, type SmallGets } from './load.js';
import { MB, MIB, RUNS, startOrigin, startTunnel, stopTunnel, transports } from './procs.js';
import { startSshPeer, sshUnavailable, type SshPeer } from './ssh-peer.js';

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
}

/** `work`'s result and the CPU seconds the peer's two sides spent per GiB of `bytes` during it. */
async function cpuPerGib<T>(p: Peer, bytes: number, work: () => Promise<T>): Promise<{ result: T; cpu: [number, number] | null }> {
  const { result, micros } = await cpuSpent(p, work);
  const perGib = (us: number): number => us / 1e6 / (bytes / 1024 ** 3);
  return { result, cpu: micros ? [perGib(micros[0]), perGib(micros[1])] : null };
}

async function round(p: Peer, bytes: number, file: { path: string; sha256: string }, parallelBytes: number, parallelSha: string): Promise<Round> {
  const down = await cpuPerGib(p, bytes, () => download(p, bytes));
  const up = await cpuPerGib(p, bytes, () => upload(p, file, bytes));
  const { small, cpu } = await smallGetsCpu(p, SECONDS, CONNECTIONS);
  const t0 = performance.now();
  const par = await cpuPerGib(p, PARALLEL * parallelBytes, () => Promise.all(Array.from({ length: PARALLEL }, () => checkedDownload(p, parallelBytes, parallelSha))));
  const parallel = (PARALLEL * parallelBytes) / MB / ((performance.now() - t0) / 1000);
  const bulkCpu = down.cpu && up.cpu && par.cpu ? { down: down.cpu, up: up.cpu, parallel: par.cpu } : null;
  return { down: down.result, up: up.result, small, parallel, cpu, bulkCpu };
}

export async function throughput(): Promise<string> {
  const bytes = Math.round(GIB * 1024 ** 3);
  const parallelBytes = PARALLEL_MIB * MIB;
  process.stderr.write('throughput: hashing the upload file and the origin body\n');
  const file = uploadFile(bytes);
  const parallelSha = originBodySha256(parallelBytes);
  const origin = await startOrigin();
  const peers: Peer[] = [{ label: 'direct to origin', base: `http://127.0.0.1:${origin.port}`, host: `127.0.0.1:${origin.port}`, cpuPids: null }];
  const notes: string[] = [];
  let ssh: SshPeer | undefined;
  const noSsh = sshUnavailable();
  if (noSsh) notes.push(`ssh -R skipped: ${noSsh}`);
  else {
    ssh = await startSshPeer(origin.port);
    peers.push({ label: 'ssh -R', base: `http://127.0.0.1:${ssh.port}`, host: `127.0.0.1:${ssh.port}`, cpuPids: [ssh.sshd.pid, ssh.ssh.pid] });
  }
  const tunnels = [];
  try {
    for (const t of transports()) {
      const tun = await startTunnel(origin.port, t);
      tunnels.push(tun);
      peers.push({ label: `Jetty ${t}`, base: tun.base, host: tun.host, cpuPids: [tun.edge.pid, tun.agent.pid] });
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
    await Promise.all([...tunnels.map(stopTunnel), ssh?.stop(), origin.proc.stop()]);
  }
}

function table(peers: Peer[], rounds: Map<string, Round[]>, notes: string[]): string {
  const { med, ratio } = roundFigures(peers, rounds);
  const tool = rounds.get(peers[0].label)![0].small.tool;
  const lines = [
    `${GIB} GiB down/up with curl (uploads checked at the origin: status, bytes, SHA-256); ${SECONDS} s of 13-byte GETs at ${CONNECTIONS} connections (${tool}; req/s counts 2xx only); ${PARALLEL} × ${PARALLEL_MIB} MiB concurrent curl downloads, each body SHA-256-checked (aggregate MB/s); CPU µs per small request and CPU s per GiB transferred from /proc/PID/stat (server side = edge or sshd, client side = agent or ssh); medians of ${RUNS}; (×N) = ratio to ssh -R.`,
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
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}
