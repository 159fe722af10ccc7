// Phase `sse` (large): 2,000 concurrent open SSE exchanges across 20 agents (real processes, 100 each,
// names sse-0..sse-19) through one fresh edge. Edge RSS growth from the moment every agent is up to all
// streams open and EVENTS events delivered; latency from the origin writing an event (its wall clock,
// in the event) to its arrival at each client (this process's wall clock, same machine). Every client
// must receive every event.
import { request, type ClientRequest } from 'node:http';
import { MIB, pollUntil, startAgent, startEdge, startOrigin, transports, treeCpuMicros, withRss, type Proc } from './procs.js';
import { RELAY_LABEL, startRelayPeer } from './relay-peer.js';

const AGENTS = Number(process.env.BENCH_SSE_AGENTS ?? 20);
const PER_AGENT = Number(process.env.BENCH_SSE_PER_AGENT ?? 100);
const EVENTS = 5;
const EVENT_EVERY_MS = 500;
/** Time for every stream to open, and for every event to arrive. */
const OPEN_TIMEOUT_MS = 60_000;
const DELIVERY_TIMEOUT_MS = 10_000;
const SETTLE_MS = 1_000;
/** Bytes of a stream's unparsed tail kept (an event is ~30 bytes). */
const MAX_PENDING_BYTES = 4096;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nowMs = (): number => performance.timeOrigin + performance.now();
/** CPU µs this process (the clients) has used. */
function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

interface Client {
  req: ClientRequest;
  open: boolean;
  failed?: string;
  latencies: number[];
}

function openClient(port: number, host: string): Client {
  const c: Client = { req: undefined as unknown as ClientRequest, open: false, latencies: [] };
  c.req = request({ host: '127.0.0.1', port, path: '/events', headers: { host }, agent: false }, (res) => {
    if (res.statusCode !== 200) {
      c.failed = `HTTP ${res.statusCode}`;
      res.resume();
      return;
    }
    let pending = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      const at = nowMs();
      pending = (pending + d).slice(-MAX_PENDING_BYTES);
      let i: number;
      while ((i = pending.indexOf('\n\n')) >= 0) {
        const ev = pending.slice(0, i);
        pending = pending.slice(i + 2);
        if (ev.startsWith(': open')) c.open = true;
        else if (ev.startsWith('data: ')) c.latencies.push(at - Number(ev.slice(6)));
      }
    });
    res.on('error', () => undefined);
  });
  c.req.on('error', (err) => (c.failed ??= err.message));
  c.req.end();
  return c;
}

async function broadcast(originPort: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: originPort, path: '/broadcast', agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(Number(body)));
    });
    req.on('error', reject);
    req.end();
  });
}

async function oneTransport(transport: string): Promise<string> {
  const origin = await startOrigin();
  // `direct`: the same clients straight to the origin, the floor of the apparatus. `relay`: through two
  // bare Node TCP relays (bench/relay-peer.ts), the floor of a tunnel of two Node processes.
  const relay = transport === 'relay' ? await startRelayPeer(origin.port) : undefined;
  const tunnel = transport !== 'direct' && !relay;
  const { edge, port } = tunnel ? await startEdge(['--max-connections-per-ip', String(AGENTS * PER_AGENT * 2), '--log-level', 'warn']) : { edge: undefined, port: relay?.port ?? origin.port };
  const agents: Proc[] = [];
  const clients: Client[] = [];
  try {
    if (tunnel) {
      const started = await Promise.all(Array.from({ length: AGENTS }, (_, i) => startAgent(port, origin.port, transport, `sse-${i}`)));
      agents.push(...started.map((s) => s.agent));
    }
    await delay(SETTLE_MS);
    // CPU µs of the edge (or front relay), of every agent together (or the back relay), of the origin and
    // of this process (the clients).
    const cpuNow = (): number[] => [
      edge ? treeCpuMicros(edge.pid) : relay ? treeCpuMicros(relay.front.pid) : NaN,
      agents.length ? agents.reduce((sum, a) => sum + treeCpuMicros(a.pid), 0) : relay ? treeCpuMicros(relay.back.pid) : NaN,
      treeCpuMicros(origin.proc.pid),
      ownCpuMicros(),
    ];
    let cpu: number[] = [];
    const t0 = performance.now();
    const { growth, base } = await withRss(edge ? [edge.pid] : [], async () => {
      for (let a = 0; a < AGENTS; a++) for (let i = 0; i < PER_AGENT; i++) clients.push(openClient(port, tunnel ? `sse-${a}.localhost:${port}` : `127.0.0.1:${port}`));
      await pollUntil(() => clients.every((c) => c.open || c.failed), 'not every SSE stream opened', OPEN_TIMEOUT_MS);
      const failed = clients.filter((c) => c.failed);
      if (failed.length) throw new Error(`${failed.length} of ${clients.length} SSE streams failed, first: ${failed[0].failed}`);
      const before = cpuNow();
      for (let e = 0; e < EVENTS; e++) {
        const n = await broadcast(origin.port);
        if (n !== clients.length) throw new Error(`origin holds ${n} streams, expected ${clients.length}`);
        await delay(EVENT_EVERY_MS);
      }
      await pollUntil(() => clients.every((c) => c.latencies.length >= EVENTS), 'not every event reached every client', DELIVERY_TIMEOUT_MS);
      const after = cpuNow();
      cpu = after.map((us, i) => (us - before[i]) / (EVENTS * clients.length));
    });
    const openS = (performance.now() - t0) / 1000;
    const lat = clients.flatMap((c) => c.latencies).sort((a, b) => a - b);
    const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    const mib = (b: number | undefined): string => (b === undefined ? '—' : (b / MIB).toFixed(1));
    return `| ${tunnel ? transport : relay ? RELAY_LABEL : 'direct to origin'} | ${clients.length} | ${mib(base[0])} | ${mib(growth[0])} | ${lat.length} | ${q(0.5).toFixed(1)} | ${q(0.99).toFixed(1)} | ${lat.at(-1)!.toFixed(1)} | ${cpu.map((us) => (Number.isNaN(us) ? '—' : us.toFixed(0))).join(' / ')} | ${openS.toFixed(1)} |`;
  } finally {
    for (const c of clients) c.req.destroy();
    await Promise.all([...agents.map((a) => a.stop()), edge?.stop(), relay?.stop(), origin.proc.stop()]);
  }
}

export async function sse(): Promise<string> {
  const lines = [
    `A fresh edge, ${AGENTS} agents (processes), ${AGENTS * PER_AGENT} SSE clients (${PER_AGENT} per agent, one connection each, in the bench process); ${EVENTS} events ${EVENT_EVERY_MS} ms apart written by the origin to every stream. Growth = edge peak RSS over its value with every agent up and no client. Latency = arrival at the client − origin write time (same clock). CPU per event: µs of CPU each side spent from the first broadcast to the last arrival, over the events delivered (edge or front relay / all agents together or the back relay / origin / the clients, this process). Direct to the origin is the floor of this apparatus; ${RELAY_LABEL} (no parsing, no framing) the floor of a tunnel of two Node processes. One run per transport.`,
    '',
    '| transport | streams | edge RSS before MiB | edge growth MiB | events received | latency p50 ms | p99 ms | max ms | CPU µs per event edge / agents / origin / clients | scenario s |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const t of ['direct', 'relay', ...transports()]) {
    process.stderr.write(`sse: ${AGENTS * PER_AGENT} streams over ${t}\n`);
    lines.push(await oneTransport(t));
  }
  return lines.join('\n');
}
