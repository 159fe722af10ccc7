import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { medianOf, printTable, RUNS, tunnel } from './port-bench.js';

/**
 * TCP tunnel bench (`node dist/bench/tcp.js`): 1 GiB (BENCH_GIB) each way through `jetty tcp` over
 * gRPC and WebSocket, and a 50-connection ping-pong (64 bytes, 5 s), against the same origin reached
 * directly. The origin runs in this process: `D` streams the bytes down, `U` counts them up, `E` echoes.
 */

const GIB = Number(process.env.BENCH_GIB) || 1;
const TOTAL = GIB * 1024 ** 3;
const SECONDS = Number(process.env.BENCH_SECONDS) || 5;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

function origin(): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.once('data', (first: Buffer) => {
      const mode = String.fromCharCode(first[0]);
      if (mode === 'E') {
        s.write(first.subarray(1));
        s.pipe(s);
      } else if (mode === 'D') {
        let sent = 0;
        const pump = (): void => {
          while (sent < TOTAL) {
            sent += CHUNK.byteLength;
            if (!s.write(CHUNK)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      } else {
        let n = first.byteLength - 1;
        s.on('data', (d: Buffer) => (n += d.byteLength));
        s.on('end', () => s.end(String(n)));
      }
    });
  });
  server.unref();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function dial(port: number): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

async function download(port: number): Promise<number> {
  const s = await dial(port);
  const t0 = performance.now();
  s.write('D');
  let n = 0;
  s.on('data', (d: Buffer) => (n += d.byteLength));
  await once(s, 'end');
  s.destroy();
  return n / 1e6 / ((performance.now() - t0) / 1000);
}

async function upload(port: number): Promise<number> {
  const s = await dial(port);
  const t0 = performance.now();
  s.write('U');
  for (let sent = 0; sent < TOTAL; sent += CHUNK.byteLength) if (!s.write(CHUNK)) await once(s, 'drain');
  s.end();
  let answer = '';
  s.on('data', (d: Buffer) => (answer += d.toString()));
  await once(s, 'end');
  s.destroy();
  if (Number(answer) !== TOTAL) throw new Error(`origin counted ${answer} of ${TOTAL} bytes`);
  return TOTAL / 1e6 / ((performance.now() - t0) / 1000);
}

async function pingPong(port: number): Promise<number> {
  const until = performance.now() + SECONDS * 1000;
  const msg = Buffer.alloc(64, 0x62);
  const counts = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const s = await dial(port);
      s.write('E');
      let n = 0;
      while (performance.now() < until) {
        s.write(msg);
        let got = 0;
        while (got < msg.byteLength) got += ((await once(s, 'data')) as [Buffer])[0].byteLength;
        n++;
      }
      s.destroy();
      return n;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / SECONDS;
}

async function measure(port: number): Promise<number[]> {
  return [await medianOf(() => download(port)), await medianOf(() => upload(port)), await medianOf(() => pingPong(port))];
}

const originPort = await origin();
const columns = ['direct'];
const results = [await measure(originPort)];
for (const transport of ['grpc', 'websocket']) {
  const t = await tunnel('tcp', originPort, '29500-29509', transport);
  try {
    results.push(await measure(t.port));
    columns.push(`jetty tcp ${transport}`);
  } finally {
    await t.stop();
  }
}
printTable(`TCP tunnel, ${GIB} GiB each way, ${SECONDS} s of 50-connection ping-pong (64 B), ${RUNS} runs`, columns, [
  ['download MB/s', ...results.map((r) => Math.round(r[0]))],
  ['upload MB/s', ...results.map((r) => Math.round(r[1]))],
  ['ping-pong round trips/s', ...results.map((r) => Math.round(r[2]))],
]);
process.exit(0);
