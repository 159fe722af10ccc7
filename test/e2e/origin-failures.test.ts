import { once } from 'node:events';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import type { AgentInit } from '../../src/agent/agent.js';
import type { RequestRecord } from '../../src/agent/origin-proxy.js';
import { send, startAgent, startEdge, waitFor } from '../helpers/harness.js';

const TRANSPORTS: Array<[string, Partial<AgentInit>]> = [
  ['grpc', { transport: 'grpc' }],
  ['websocket+proto', { transport: 'websocket', wsCodec: 'proto' }],
  ['websocket+json', { transport: 'websocket', wsCodec: 'json' }],
];

/** A raw origin that answers each request head at once, then closes (python's http.server on a POST it has no handler for). */
async function earlyAnswerOrigin(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.end('HTTP/1.0 501 Unsupported method\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nno POST here\n');
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, sockets };
}

for (const [label, options] of TRANSPORTS) {
  const test = suite(`e2e/origin-failures (${label})`);

  // Regression: with nothing listening on the origin port, each request left an exchange open on the
  // agent (no log line, and SIGTERM waited the whole grace period).
  test('origin refusing connections: every request gets 502, is logged once, and releases its exchange', async () => {
    const dead = createServer();
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const port = (dead.address() as { port: number }).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const edge = await startEdge();
    const agent = await startAgent(edge, new URL(`http://127.0.0.1:${port}`), 'dead', options);
    const records: RequestRecord[] = [];
    agent.on('request', (r: RequestRecord) => records.push(r));
    try {
      const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => send(edge, 'dead', `/x${i}`)));
      for (const { res } of answers) assert.is(res.statusCode, 502);
      await waitFor(() => records.length === 5, 5000, 'five agent log records');
      assert.ok(records.every((r) => r.err !== undefined));
      await waitFor(() => agent.stats().openExchanges === 0 && edge.stats().openExchanges === 0, 2000, 'exchanges released');
    } finally {
      await agent.close();
      await edge.close();
    }
  });

  // Regression: a large POST to an origin that answered 501 without reading the body left the edge's
  // /readyz at "exchanges":1 for good while the gauge said 0.
  test('early answer to a large upload: the client gets the answer and every count returns to zero', async () => {
    const origin = await earlyAnswerOrigin();
    const edge = await startEdge({ adminListen: '127.0.0.1:0' });
    const agent = await startAgent(edge, new URL(`http://127.0.0.1:${origin.port}`), 'early', options);
    try {
      const req = request({
        host: '127.0.0.1',
        port: edge.publicPort,
        method: 'POST',
        path: '/upload',
        headers: { host: 'early.localhost', 'content-length': String(100 * 1024 * 1024) },
        agent: false,
      });
      req.on('error', () => undefined);
      const chunk = Buffer.alloc(64 * 1024, 1);
      // Write until the response comes (or the connection is closed under us), never the whole body.
      const pump = (): void => {
        while (!req.destroyed && req.write(chunk));
        if (!req.destroyed) req.once('drain', pump);
      };
      pump();
      const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
      assert.is(res.statusCode, 501);
      const body: Buffer[] = [];
      for await (const d of res) body.push(d as Buffer);
      assert.is(Buffer.concat(body).toString(), 'no POST here\n');
      req.destroy();
      await waitFor(() => agent.stats().openExchanges === 0 && edge.stats().openExchanges === 0, 5000, 'exchanges released');
      // /readyz and the gauge agree once the exchange is over (the router's count ends with its log line).
      await waitFor(async () => {
        const ready = (await (await fetch(`http://127.0.0.1:${edge.adminPort}/readyz`)).json()) as { exchanges: number };
        const metrics = await (await fetch(`http://127.0.0.1:${edge.adminPort}/metrics`)).text();
        return ready.exchanges === 0 && /^jetty_open_exchanges 0$/m.test(metrics);
      }, 5000, '/readyz and jetty_open_exchanges to say 0');
    } finally {
      await agent.close();
      await edge.close();
      for (const s of origin.sockets) s.destroy();
      await new Promise<void>((r) => origin.server.close(() => r()));
    }
  });

  test.run();
}
