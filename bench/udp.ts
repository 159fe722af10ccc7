import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { median, printTable, RUNS, tunnel } from './port-bench.js';

/**
 * UDP tunnel bench (`node dist/bench/udp.js`): 512-byte datagrams offered at fixed rates for
 * BENCH_SECONDS (default 3) to an echo origin, through `jetty udp` over gRPC and WebSocket and
 * directly; reports echoes received per second and the loss (datagrams sent but never echoed).
 */

const SECONDS = Number(process.env.BENCH_SECONDS) || 3;
const RATES = (process.env.BENCH_UDP_RATES ?? '10000,25000,50000').split(',').map(Number);
const PAYLOAD = Buffer.alloc(512, 0x63);

async function echoOrigin(): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  s.unref();
  return s.address().port;
}

/** Offers `rate` datagrams/s for SECONDS (sent in 1 ms ticks); resolves with [received/s, loss %]. */
async function offer(port: number, rate: number): Promise<[number, number]> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  let received = 0;
  s.on('message', () => received++);
  const perTick = rate / 1000;
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    for (; sent < due; sent++) s.send(PAYLOAD, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, Math.max(1, 1 / perTick)));
  }
  // Late echoes: wait until none has come for 500 ms.
  let last = -1;
  while (last !== received) {
    last = received;
    await new Promise((r) => setTimeout(r, 500));
  }
  s.close();
  return [received / SECONDS, (100 * (sent - received)) / sent];
}

const originPort = await echoOrigin();
const targets: Array<[string, number, () => void]> = [['direct', originPort, () => undefined]];
for (const transport of ['grpc', 'websocket']) {
  const t = await tunnel('udp', originPort, '29600-29609', transport);
  targets.push([`jetty udp ${transport}`, t.port, t.stop]);
}
const rows: Array<[string, ...number[]]> = [];
for (const rate of RATES) {
  const received: number[] = [];
  const loss: number[] = [];
  for (const [, port] of targets) {
    const runs: Array<[number, number]> = [];
    for (let i = 0; i < RUNS; i++) runs.push(await offer(port, rate));
    received.push(Math.round(median(runs.map((r) => r[0]))));
    loss.push(median(runs.map((r) => r[1])));
  }
  rows.push([`${rate}/s offered: received/s`, ...received], [`${rate}/s offered: loss %`, ...loss]);
}
for (const [, , stop] of targets) stop();
printTable(`UDP tunnel, 512-byte datagrams to an echo origin, ${SECONDS} s per rate, ${RUNS} runs`, targets.map(([n]) => n), rows);
process.exit(0);
