// `node dist/bench/websocket.js`: WebSocket echo through the tunnel vs direct to the origin. The origin
// (this file with argv `origin`), the edge and the agent are separate processes on loopback; the client
// runs here. Each figure is the median of BENCH_RUNS runs. Prints a markdown table.
//   throughput: BENCH_WS_MIB MiB (256) sent in 1 MiB binary messages and echoed back, at most
//     IN_FLIGHT_BYTES unanswered; MB/s counts one direction.
//   messages/s: 32-byte text messages echoed for BENCH_SECONDS (3) s, IN_FLIGHT_MESSAGES unanswered.
// Environment: BENCH_RUNS (3), BENCH_WS_MIB (256), BENCH_SECONDS (3), BENCH_TRANSPORTS (grpc,websocket).
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { start } from './spawn-ready.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MIB = Number(process.env.BENCH_WS_MIB ?? 256);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'grpc,websocket').split(',');
/** Unanswered bytes the throughput client allows (the echo's pipeline depth). */
const IN_FLIGHT_BYTES = 16 * 1024 * 1024;
/** Unanswered small messages the messages/s client allows. */
const IN_FLIGHT_MESSAGES = 64;
const MESSAGE_BYTES = 1024 * 1024;
const MB = 1e6;
const SELF = fileURLToPath(import.meta.url);
const BIN = join(fileURLToPath(new URL('../../', import.meta.url)), 'bin/jetty.js');

/** The echo origin: one process, any port; prints `ws-origin PORT`. */
async function serveOrigin(): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * MESSAGE_BYTES });
  await once(wss, 'listening');
  wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data as Buffer, { binary })));
  process.stdout.write(`ws-origin ${(wss.address() as { port: number }).port}\n`);
}

async function connect(url: string, host: string | undefined): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers: host ? { host } : {}, perMessageDeflate: false, maxPayload: 64 * MESSAGE_BYTES });
  await once(ws, 'open');
  return ws;
}

/** MB/s of one direction while MIB MiB are echoed. */
async function throughput(url: string, host: string | undefined): Promise<number> {
  const ws = await connect(url, host);
  const total = MIB * 1024 * 1024;
  const block = Buffer.alloc(MESSAGE_BYTES, 7);
  let sent = 0;
  let received = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (sent < total && sent - received < IN_FLIGHT_BYTES) {
        ws.send(block, { binary: true });
        sent += block.length;
      }
    };
    ws.on('message', (d: Buffer) => {
      received += d.length;
      if (received >= total) resolve();
      else pump();
    });
    ws.on('error', reject);
    pump();
  });
  const seconds = (performance.now() - started) / 1000;
  ws.close();
  return total / MB / seconds;
}

/** Small messages echoed per second. */
async function messageRate(url: string, host: string | undefined): Promise<number> {
  const ws = await connect(url, host);
  const text = 'x'.repeat(32);
  let answered = 0;
  let stop = false;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => (stop = true), SECONDS * 1000);
    let outstanding = 0;
    ws.on('message', () => {
      answered++;
      outstanding--;
      if (!stop) {
        ws.send(text);
        outstanding++;
      } else if (outstanding === 0) {
        clearTimeout(timer);
        resolve();
      }
    });
    ws.on('error', reject);
    for (; outstanding < IN_FLIGHT_MESSAGES; outstanding++) ws.send(text);
  });
  const seconds = (performance.now() - started) / 1000;
  ws.close();
  return answered / seconds;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(url: string, host: string | undefined): Promise<{ mbps: number; rate: number }> {
  const mbps: number[] = [];
  const rate: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    mbps.push(await throughput(url, host));
    rate.push(await messageRate(url, host));
  }
  return { mbps: median(mbps), rate: median(rate) };
}

async function main(): Promise<void> {
  const started: ChildProcess[] = [];
  try {
    const origin = await start([SELF, 'origin'], /ws-origin (\d+)/);
    started.push(origin.child);
    const originPort = Number(origin.match[1]);
    const rows: string[] = [];
    const direct = await measure(`ws://127.0.0.1:${originPort}/`, undefined);
    rows.push(`| direct | ${direct.mbps.toFixed(0)} | 100 % | ${direct.rate.toFixed(0)} | 100 % |`);
    for (const transport of TRANSPORTS) {
      const edge = await start([BIN, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''], /on http:\/\/localhost:(\d+) /);
      started.push(edge.child);
      const port = Number(edge.match[1]);
      const agent = await start([BIN, 'http', `127.0.0.1:${originPort}`, '--edge', `http://127.0.0.1:${port}`, '--name', 'bench', '--transport', transport], /^Forwarding /m);
      started.push(agent.child);
      const m = await measure(`ws://127.0.0.1:${port}/`, `bench.localhost:${port}`);
      const pct = (a: number, b: number): string => `${Math.round((a / b) * 100)} %`;
      rows.push(`| jetty ${transport} | ${m.mbps.toFixed(0)} | ${pct(m.mbps, direct.mbps)} | ${m.rate.toFixed(0)} | ${pct(m.rate, direct.rate)} |`);
      agent.child.kill('SIGTERM');
      edge.child.kill('SIGTERM');
      await Promise.all([once(agent.child, 'exit'), once(edge.child, 'exit')]);
    }
    process.stdout.write(
      `WebSocket echo, medians of ${RUNS}: ${MIB} MiB in 1 MiB messages (MB/s one way), 32-byte messages for ${SECONDS} s with ${IN_FLIGHT_MESSAGES} in flight\n\n` +
        '| path | MB/s | vs direct | messages/s | vs direct |\n|---|---|---|---|---|\n' +
        `${rows.join('\n')}\n`,
    );
  } finally {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

if (process.argv[2] === 'origin') await serveOrigin();
else await main();
