// `node dist/bench/websocket.js`: WebSocket echo through the tunnel vs direct to the origin. The origin
// (this file with argv `origin`), the edge and the agent are separate processes on loopback; the client
// runs here. Each figure is the median of BENCH_RUNS runs. Prints a markdown table.
//   throughput: BENCH_WS_MIB MiB (256) sent in 1 MiB binary messages and echoed back, at most
//     IN_FLIGHT_BYTES unanswered; MB/s counts one direction.
//   messages/s: 32-byte text messages echoed for BENCH_SECONDS (3) s, IN_FLIGHT_MESSAGES unanswered.
//   downloads: BENCH_WS_MIB MiB sent by the origin over a WebSocket, and as an HTTP GET, through the
//     same path: issue 10's target is WebSocket pass-through at >= 70 % of the HTTP download rate.
// Environment: BENCH_RUNS (3), BENCH_WS_MIB (256), BENCH_SECONDS (3), BENCH_TRANSPORTS (grpc,websocket).
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
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

/**
 * The origin: one process, any port; prints `ws-origin PORT`. WebSocket: echoes every message. HTTP:
 * `GET /bytes?n=N` answers N bytes (the same transport's HTTP download rate, for comparison).
 */
async function serveOrigin(): Promise<void> {
  const server = createServer((req, res) => {
    const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n') ?? 0);
    res.writeHead(200, { 'content-length': n });
    Readable.from(blocks(n, 64 * 1024)).pipe(res);
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * MESSAGE_BYTES });
  wss.on('connection', (ws, req) => {
    if (req.url?.startsWith('/down')) void download(ws, Number(new URL(req.url, 'http://x').searchParams.get('n') ?? 0));
    else ws.on('message', (data, binary) => ws.send(data as Buffer, { binary }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(`ws-origin ${(server.address() as AddressInfo).port}\n`);
}

/** `n` bytes in blocks of `size` (one reused buffer). */
function* blocks(n: number, size: number): Generator<Buffer> {
  const block = Buffer.alloc(size, 120);
  for (let left = n; left > 0; left -= size) yield left >= size ? block : block.subarray(0, left);
}

/** Sends `n` bytes in MESSAGE_BYTES messages, each once the previous one reached the socket, then closes. */
async function download(ws: WebSocket, n: number): Promise<void> {
  for (const block of blocks(n, MESSAGE_BYTES)) {
    await new Promise<void>((resolve, reject) => ws.send(block, { binary: true }, (err) => (err ? reject(err) : resolve())));
  }
  ws.close(1000);
}

/** MB/s of a WebSocket download of MIB MiB (the origin sends, the client only reads). */
async function wsDownload(port: number, host: string | undefined): Promise<number> {
  const total = MIB * 1024 * 1024;
  const ws = await connect(`ws://127.0.0.1:${port}/down?n=${total}`, host);
  const started = performance.now();
  let got = 0;
  ws.on('message', (d: Buffer) => (got += d.length));
  await once(ws, 'close');
  if (got !== total) throw new Error(`got ${got} of ${total} bytes`);
  return total / MB / ((performance.now() - started) / 1000);
}

/** MB/s of an HTTP GET of MIB MiB through `base` (Host `host`). */
async function httpDownload(port: number, host: string | undefined): Promise<number> {
  const total = MIB * 1024 * 1024;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/bytes?n=${total}`, headers: host ? { host } : {}, agent: false }, (res) => {
      let got = 0;
      res.on('data', (d: Buffer) => (got += d.length));
      res.on('end', () => (got === total ? resolve() : reject(new Error(`got ${got} of ${total} bytes`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return total / MB / ((performance.now() - started) / 1000);
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

interface Figures {
  mbps: number;
  rate: number;
  down: number;
  http: number;
}

async function measure(port: number, host: string | undefined): Promise<Figures> {
  const url = `ws://127.0.0.1:${port}/`;
  const runs: Figures[] = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push({ mbps: await throughput(url, host), rate: await messageRate(url, host), down: await wsDownload(port, host), http: await httpDownload(port, host) });
  }
  return { mbps: median(runs.map((r) => r.mbps)), rate: median(runs.map((r) => r.rate)), down: median(runs.map((r) => r.down)), http: median(runs.map((r) => r.http)) };
}

async function main(): Promise<void> {
  const started: ChildProcess[] = [];
  try {
    const origin = await start([SELF, 'origin'], /ws-origin (\d+)/);
    started.push(origin.child);
    const originPort = Number(origin.match[1]);
    const rows: string[] = [];
    const pct = (a: number, b: number): string => `${Math.round((a / b) * 100)} %`;
    const row = (label: string, m: Figures, base: Figures): string =>
      `| ${label} | ${m.mbps.toFixed(0)} | ${pct(m.mbps, base.mbps)} | ${m.rate.toFixed(0)} | ${pct(m.rate, base.rate)} | ${m.down.toFixed(0)} | ${m.http.toFixed(0)} | ${pct(m.down, m.http)} |`;
    const direct = await measure(originPort, undefined);
    rows.push(row('direct', direct, direct));
    for (const transport of TRANSPORTS) {
      const edge = await start([BIN, 'edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''], /on http:\/\/localhost:(\d+) /);
      started.push(edge.child);
      const port = Number(edge.match[1]);
      const agent = await start([BIN, 'http', `127.0.0.1:${originPort}`, '--edge', `http://127.0.0.1:${port}`, '--name', 'bench', '--transport', transport], /^Forwarding /m);
      started.push(agent.child);
      rows.push(row(`jetty ${transport}`, await measure(port, `bench.localhost:${port}`), direct));
      agent.child.kill('SIGTERM');
      edge.child.kill('SIGTERM');
      await Promise.all([once(agent.child, 'exit'), once(edge.child, 'exit')]);
    }
    process.stdout.write(
      `WebSocket echo, medians of ${RUNS}: ${MIB} MiB in 1 MiB messages (MB/s one way), 32-byte messages for ${SECONDS} s with ${IN_FLIGHT_MESSAGES} in flight\n\n` +
        '| path | echo MB/s | vs direct | messages/s | vs direct | WS download MB/s | HTTP download MB/s | WS vs HTTP download |\n|---|---|---|---|---|---|---|---|\n' +
        `${rows.join('\n')}\n`,
    );
  } finally {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

if (process.argv[2] === 'origin') await serveOrigin();
else await main();
