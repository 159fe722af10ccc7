// `node dist/bench/grpc-origin.js` (after `npm run build`): an HTTP/2 origin behind `jetty http h2c://…`.
// Origin, edge and agents run as separate processes on loopback; every figure is the median of RUNS runs.
// If the edge's public port speaks h2c it measures gRPC unary calls/s (a stock grpc-js client, CONCURRENCY
// calls in flight) through the tunnel vs direct to the server. If it does not (an edge without public
// HTTP/2), it measures small GET req/s over public HTTP/1.1 (autocannon, 50 connections) to an h2c origin vs
// a plain http:// origin, both through the tunnel. The first line printed says which.
// Environment: BENCH_RUNS (3), BENCH_SECONDS (5), BENCH_TRANSPORT (grpc).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import autocannon from 'autocannon';
import { ECHO_SERVICE, echoClient, speaksH2c, type EchoClient } from '../test/helpers/grpc-echo.js';
import { jetty, type Running } from '../test/helpers/process.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const TRANSPORT = process.env.BENCH_TRANSPORT ?? 'grpc';
/** Unary calls kept in flight by the gRPC client. */
const CONCURRENCY = 50;
const SELF = fileURLToPath(import.meta.url);
const REPLY = Buffer.from('hello, world\n');

/** Processes this bench started (killed at the end by their handles). */
const started: Running[] = [];
let originProcess: ChildProcess | undefined;

/** Starts `jetty …args` and resolves with the first stdout line matching `ready`. */
async function jettyProcess(args: string[], ready: RegExp): Promise<RegExpExecArray> {
  const run = jetty(args);
  started.push(run);
  return run.line(ready, 30_000);
}

/** The origin process (this file with --serve); resolves with its ports line. */
async function startOrigins(): Promise<RegExpExecArray> {
  originProcess = spawn(process.execPath, [SELF, '--serve'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [first] = (await once(originProcess.stdout!, 'data')) as [Buffer];
  const m = /origins grpc=(\d+) h2c=(\d+) http=(\d+)/.exec(first.toString());
  if (!m) throw new Error(`origin process said ${first.toString()}`);
  return m;
}

/** The origin process: a gRPC Echo server, an h2c server and an HTTP/1.1 server answering REPLY. */
async function serveOrigins(): Promise<void> {
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    unary: (call: grpc.ServerUnaryCall<{ text?: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { text: call.request.text }),
    serverStream: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    clientStream: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    bidi: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const h2 = createH2Server();
  h2.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-length': String(REPLY.length) });
    stream.end(REPLY);
  });
  const h1 = createServer((_req, res) => res.end(REPLY));
  await Promise.all([new Promise<void>((r) => h2.listen(0, '127.0.0.1', r)), new Promise<void>((r) => h1.listen(0, '127.0.0.1', r))]);
  process.stdout.write(`origins grpc=${grpcPort} h2c=${(h2.address() as AddressInfo).port} http=${(h1.address() as AddressInfo).port}\n`);
}

/** Unary calls completed per second over SECONDS with CONCURRENCY in flight; failed calls are not counted. */
async function unaryRate(client: EchoClient): Promise<number> {
  const until = Date.now() + SECONDS * 1000;
  let ok = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < until) {
      await new Promise<void>((resolve) =>
        client.unary({ text: 'hi' }, new grpc.Metadata(), {}, (err) => {
          if (err) failed++;
          else ok++;
          resolve();
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (failed > 0) process.stderr.write(`${failed} calls failed\n`);
  return ok / SECONDS;
}

async function getRate(port: number, host: string): Promise<number> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 50, duration: SECONDS, headers: { host } });
  // Only 2xx answers count: an error page is not a served request.
  return r['2xx'] / SECONDS;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const [, grpcPort, h2cPort, httpPort] = await startOrigins();
  const edgeMatch = await jettyProcess(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''], /Jetty edge on http:\/\/localhost:(\d+) /);
  const port = Number(edgeMatch[1]);
  const edge = `http://127.0.0.1:${port}`;
  const agent = (target: string, name: string) => jettyProcess(['http', target, '--edge', edge, '--name', name, '--transport', TRANSPORT], /^Forwarding /);
  const h2c = await speaksH2c(port);
  const rows: string[] = [];
  if (h2c) {
    process.stdout.write(`measuring: gRPC unary calls/s, ${CONCURRENCY} in flight, ${SECONDS} s, median of ${RUNS}; tunnel over ${TRANSPORT} vs direct\n`);
    await agent(`h2c://127.0.0.1:${grpcPort}`, 'grpc');
    const direct = echoClient(`127.0.0.1:${grpcPort}`);
    const tunnel = echoClient(`127.0.0.1:${port}`, 'grpc.localhost');
    const d: number[] = [];
    const t: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      d.push(await unaryRate(direct));
      t.push(await unaryRate(tunnel));
    }
    rows.push(`| gRPC unary calls/s | ${median(d).toFixed(0)} | ${median(t).toFixed(0)} | ${(median(t) / median(d)).toFixed(2)} |`);
    rows.unshift('| metric | direct | through the tunnel | ratio |', '|---|---|---|---|');
    direct.close();
    tunnel.close();
  } else {
    process.stdout.write(
      `measuring: the edge's public port does not speak h2c, so not gRPC: small GET req/s over public HTTP/1.1 (50 connections, ${SECONDS} s, median of ${RUNS}) to an h2c:// origin vs an http:// origin, both through the tunnel over ${TRANSPORT}\n`,
    );
    await agent(`h2c://127.0.0.1:${h2cPort}`, 'h2');
    await agent(`http://127.0.0.1:${httpPort}`, 'h1');
    const h1: number[] = [];
    const h2: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      h1.push(await getRate(port, 'h1.localhost'));
      h2.push(await getRate(port, 'h2.localhost'));
    }
    rows.push('| metric | http:// origin | h2c:// origin | ratio |', '|---|---|---|---|');
    rows.push(`| small GET req/s through the tunnel | ${median(h1).toFixed(0)} | ${median(h2).toFixed(0)} | ${(median(h2) / median(h1)).toFixed(2)} |`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

if (process.argv.includes('--serve')) {
  await serveOrigins();
} else {
  try {
    await main();
  } finally {
    await Promise.all(started.map((r) => r.kill()));
    originProcess?.kill();
  }
}
