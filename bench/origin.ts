// Benchmark origin: a plain Node HTTP server on 127.0.0.1 (port from argv, 0 = any), run as its own process.
//   GET  /bytes?n=N   N bytes from a reused 64 KiB block, with Content-Length
//   POST /sink        reads the body, answers its length
//   GET  /small       a 13-byte body
//   GET  /sse?n=N&ms=M  N server-sent events, one every M ms
//   GET  /endless     writes until the client goes away; /stats says whether it was paused and saw the abort
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const BLOCK = Buffer.alloc(64 * 1024, 120);
const endless = { written: 0, pauses: 0, aborted: false, finished: false };

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 13 });
    res.end('hello, world\n');
  } else if (url.pathname === '/bytes') {
    let left = Number(url.searchParams.get('n') ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, BLOCK.length);
        left -= n;
        if (!res.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  } else if (url.pathname === '/sink') {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(String(n)));
  } else if (url.pathname === '/endless') {
    Object.assign(endless, { written: 0, pauses: 0, aborted: false, finished: false });
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.on('close', () => (endless.aborted = !res.writableFinished));
    const pump = (): void => {
      while (!res.destroyed) {
        endless.written += BLOCK.length;
        if (!res.write(BLOCK)) {
          endless.pauses++;
          return void res.once('drain', pump);
        }
      }
    };
    pump();
  } else if (url.pathname === '/sse') {
    // n events, one every ms milliseconds, then the end of the stream.
    let left = Number(url.searchParams.get('n') ?? 10);
    const every = Number(url.searchParams.get('ms') ?? 50);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const tick = (): void => {
      if (res.destroyed) return;
      res.write(`data: event ${left}\n\n`);
      if (--left > 0) setTimeout(tick, every);
      else res.end();
    };
    tick();
  } else if (url.pathname === '/stats') {
    res.end(JSON.stringify(endless));
  } else {
    res.writeHead(404).end();
  }
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`origin ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
