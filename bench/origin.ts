// Benchmark origin: a plain Node HTTP server on 127.0.0.1 (port from argv, 0 = any), run as its own process.
//   GET  /bytes?n=N   N bytes from a reused 64 KiB block, with Content-Length
//   POST /sink[?mbps=N]  reads the body (at most N MB/s), answers {"bytes": N, "sha256": HEX} so the bench checks every upload
//   GET  /small       a 13-byte body
//   GET  /sse?n=N&ms=M  N server-sent events, one every M ms
//   GET  /endless     writes until the client goes away; /stats counts writes, pauses and aborts over all of them
//   GET  /events      an open event stream that /broadcast writes to
//   POST /broadcast   writes `data: T` to every open /events stream, T = wall-clock ms (µs precision) of that write
import { createHash } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const BLOCK = Buffer.alloc(64 * 1024, 120);
/** /endless over the origin's life: bytes written, times a write was refused, streams open, cut, waiting on drain now. */
const endless = { written: 0, pauses: 0, open: 0, aborted: 0, waiting: 0 };
const events = new Set<ServerResponse>();
const nowMs = (): number => performance.timeOrigin + performance.now();

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
    const hash = createHash('sha256');
    // ?mbps=N: read at most N MB/s (a slow origin, to show whether the path before it buffers).
    const mbps = Number(url.searchParams.get('mbps') ?? 0);
    req.on('data', (d: Buffer) => {
      n += d.length;
      hash.update(d);
      if (mbps > 0) {
        req.pause();
        setTimeout(() => req.resume(), d.length / (mbps * 1000));
      }
    });
    req.on('end', () => res.end(JSON.stringify({ bytes: n, sha256: hash.digest('hex') })));
  } else if (url.pathname === '/endless') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    endless.open++;
    let waiting = false;
    res.on('close', () => {
      endless.open--;
      if (waiting) endless.waiting--;
      if (!res.writableFinished) endless.aborted++;
    });
    const pump = (): void => {
      if (waiting) (waiting = false), endless.waiting--;
      while (!res.destroyed) {
        endless.written += BLOCK.length;
        if (!res.write(BLOCK)) {
          endless.pauses++;
          waiting = true;
          endless.waiting++;
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
  } else if (url.pathname === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(': open\n\n');
    events.add(res);
    res.on('close', () => events.delete(res));
  } else if (url.pathname === '/broadcast') {
    // Each stream's event carries its own write time: the latency measured is the path's, not the
    // time this loop takes to reach the 2,000th stream.
    for (const e of events) e.write(`data: ${nowMs().toFixed(3)}\n\n`);
    res.end(String(events.size));
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
