import { once } from 'node:events';
import { request, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { suite } from './suite.js';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { patternBytes, send, sha256, startAgent as startAgentWith, startEdge, startOrigin, waitFor, type Origin } from './harness.js';

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: Origin;
  handler: RequestListener;
}

const NAME = 'demo';
const MiB = 1024 * 1024;

/**
 * The one end-to-end suite every transport and codec runs unchanged: `options` picks the agent's
 * transport (gRPC, WebSocket+protobuf, WebSocket+JSON).
 */
export function transportSuite(label: string, options: Partial<AgentInit>): void {
const test = suite<Ctx>(`e2e/tunnel (${label})`);
const startAgent = (edge: Edge, origin: URL, name: string): Promise<Agent> => startAgentWith(edge, origin, name, options);

test.before(async (ctx) => {
  ctx.handler = (_req, res) => res.end('ok');
  ctx.origin = await startOrigin((req, res) => ctx.handler(req, res));
  ctx.edge = await startEdge();
  ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME);
});

test.after.each(async (ctx) => {
  // Every exchange's state is released once the traffic of a test is over.
  await waitFor(() => ctx.edge.stats().openExchanges === 0 && ctx.agent.stats().openExchanges === 0, 5000, 'open exchanges to reach zero');
});

test.after(async (ctx) => {
  await ctx.agent.close();
  await ctx.edge.close();
  await ctx.origin.close();
});

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/** Opens a raw request and returns it with its response promise (for streaming tests). */
function open(ctx: Ctx, path: string, method = 'GET', headers: Record<string, string> = {}) {
  const req = request({
    host: '127.0.0.1',
    port: ctx.edge.publicPort,
    path,
    method,
    headers: { host: `${NAME}.localhost`, ...headers },
    agent: false,
  });
  // Tests that cut requests on purpose look at the response, not at this error.
  req.on('error', () => undefined);
  const response = once(req, 'response').then(([res]) => res as IncomingMessage);
  response.catch(() => undefined);
  return { req, response };
}

test('GET reaches the origin with method, target, header order and repeats intact', async (ctx) => {
  let seen: string[] = [];
  ctx.handler = (req, res) => {
    seen = req.rawHeaders;
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.end(`${req.method} ${req.url}`);
  };
  const { res, body } = await send(ctx.edge, NAME, '/path?q=1', { headers: { 'x-one': '1', 'x-two': '2' } });
  assert.is(res.statusCode, 200);
  assert.is(body.toString(), 'GET /path?q=1');
  assert.equal(res.headers['set-cookie'], ['a=1', 'b=2']);
  const names = seen.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  assert.ok(names.indexOf('x-one') < names.indexOf('x-two'));
});

test('64 MiB upload and download arrive byte for byte (SHA-256)', async (ctx) => {
  const payload = patternBytes(64 * MiB, 7);
  const expected = sha256(payload);
  ctx.handler = async (req, res) => {
    if (req.method === 'POST') {
      const got = await readAll(req);
      res.end(sha256(got));
    } else {
      res.setHeader('content-length', payload.length);
      res.end(payload);
    }
  };
  const up = await send(ctx.edge, NAME, '/upload', { method: 'POST', body: payload });
  assert.is(up.body.toString(), expected);
  const down = await send(ctx.edge, NAME, '/download');
  assert.is(down.body.length, payload.length);
  assert.is(sha256(down.body), expected);
});

test('chunked response without Content-Length streams through', async (ctx) => {
  ctx.handler = (_req, res) => {
    res.write('part1-');
    setImmediate(() => res.end('part2'));
  };
  const { res, body } = await send(ctx.edge, NAME, '/chunked');
  assert.is(res.headers['transfer-encoding'], 'chunked');
  assert.is(body.toString(), 'part1-part2');
});

test('a server-sent event reaches the client before the origin writes the next one', async (ctx) => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  ctx.handler = async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
    await released;
    res.end('data: second\n\n');
  };
  const { req, response } = open(ctx, '/events');
  req.end();
  const res = await response;
  assert.is(res.headers['content-type'], 'text/event-stream');
  const [first] = (await once(res, 'data')) as [Buffer];
  assert.is(first.toString(), 'data: first\n\n');
  release();
  const rest = await readAll(res);
  assert.is(rest.toString(), 'data: second\n\n');
});

test('HEAD, 204 and 304 carry no body', async (ctx) => {
  ctx.handler = (req, res) => {
    if (req.url === '/204') return void res.writeHead(204).end();
    if (req.url === '/304') return void res.writeHead(304, { etag: '"x"' }).end();
    res.setHeader('content-length', 11);
    res.end(req.method === 'HEAD' ? undefined : 'hello world');
  };
  const head = await send(ctx.edge, NAME, '/', { method: 'HEAD' });
  assert.is(head.res.statusCode, 200);
  assert.is(head.res.headers['content-length'], '11');
  assert.is(head.body.length, 0);
  const none = await send(ctx.edge, NAME, '/204');
  assert.is(none.res.statusCode, 204);
  assert.is(none.body.length, 0);
  const notModified = await send(ctx.edge, NAME, '/304');
  assert.is(notModified.res.statusCode, 304);
  assert.is(notModified.res.headers.etag, '"x"');
});

test('Expect: 100-continue is answered by the origin through the tunnel', async (ctx) => {
  let originSawExpect = '';
  ctx.handler = async (req, res) => {
    originSawExpect = String(req.headers.expect);
    res.end(`got ${(await readAll(req)).length}`);
  };
  const { req, response } = open(ctx, '/continue', 'POST', { expect: '100-continue', 'content-length': '5' });
  await once(req, 'continue');
  req.end('abcde');
  const res = await response;
  assert.is((await readAll(res)).toString(), 'got 5');
  assert.is(originSawExpect, '100-continue');
});

test('trailers pass both ways on chunked messages', async (ctx) => {
  let requestTrailers: Record<string, string | undefined> = {};
  ctx.handler = async (req, res) => {
    await readAll(req);
    requestTrailers = req.trailers;
    res.writeHead(200, { trailer: 'x-checksum' });
    res.write('body');
    res.addTrailers({ 'x-checksum': 'abc' });
    res.end();
  };
  const { req, response } = open(ctx, '/trailers', 'POST', { trailer: 'x-up' });
  req.write('data');
  req.addTrailers({ 'x-up': 'up-value' });
  req.end();
  const res = await response;
  await readAll(res);
  assert.is(res.trailers['x-checksum'], 'abc');
  assert.is(requestTrailers['x-up'], 'up-value');
});

test('hop-by-hop fields are stripped both ways and X-Forwarded-* are set by the edge', async (ctx) => {
  let seen: IncomingMessage['headers'] = {};
  ctx.handler = (req, res) => {
    seen = req.headers;
    res.writeHead(200, { connection: 'x-secret', 'x-secret': '1', 'keep-alive': 'timeout=99', 'content-length': 2 });
    res.end('ok');
  };
  const { res } = await send(ctx.edge, NAME, '/hop', {
    headers: { connection: 'x-hop', 'x-hop': 'no', te: 'trailers', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil' },
  });
  assert.is(seen['x-hop'], undefined);
  assert.is(seen.te, undefined);
  assert.is(seen['x-forwarded-for'], '127.0.0.1');
  assert.is(seen['x-forwarded-proto'], 'http');
  assert.is(seen['x-forwarded-host'], `${NAME}.localhost:${ctx.edge.publicPort}`);
  assert.is(res.headers['x-secret'], undefined);
  assert.not.equal(res.headers['keep-alive'], 'timeout=99');
});

test('the agent never sends both Content-Length and Transfer-Encoding', async (ctx) => {
  const framing: string[] = [];
  ctx.handler = async (req, res) => {
    framing.push(`${req.headers['content-length'] ?? '-'}|${req.headers['transfer-encoding'] ?? '-'}`);
    await readAll(req);
    res.end();
  };
  await send(ctx.edge, NAME, '/cl', { method: 'POST', body: 'hello' });
  const { req, response } = open(ctx, '/te', 'POST');
  req.write('hel');
  req.end('lo');
  await readAll(await response);
  assert.equal(framing, ['5|-', '-|chunked']);
});

/** Sends raw bytes to the public listener and returns the status line. */
async function rawStatus(ctx: Ctx, bytes: string): Promise<string> {
  const socket = connect(ctx.edge.publicPort, '127.0.0.1');
  // No half-close: the requests say Connection: close and the edge ends the socket after answering.
  socket.write(bytes);
  const parts: Buffer[] = [];
  for await (const d of socket) parts.push(d as Buffer);
  return Buffer.concat(parts).toString().split('\r\n')[0];
}

test('smuggling-shaped requests are rejected: two Host lines, absolute-form naming another host', async (ctx) => {
  let hits = 0;
  ctx.handler = (_req, res) => {
    hits++;
    res.end();
  };
  assert.is(await rawStatus(ctx, `GET / HTTP/1.1\r\nHost: ${NAME}.localhost\r\nHost: other.localhost\r\nConnection: close\r\n\r\n`), 'HTTP/1.1 400 Bad Request');
  assert.is(await rawStatus(ctx, `GET http://other.localhost/ HTTP/1.1\r\nHost: ${NAME}.localhost\r\nConnection: close\r\n\r\n`), 'HTTP/1.1 400 Bad Request');
  assert.is(await rawStatus(ctx, `GET http://${NAME}.localhost/x HTTP/1.1\r\nHost: ${NAME}.localhost\r\nConnection: close\r\n\r\n`), 'HTTP/1.1 200 OK');
  assert.is(hits, 1);
});

test('unknown tunnel is 404 and the edge host serves discovery', async (ctx) => {
  const missing = await send(ctx.edge, 'nobody', '/');
  assert.is(missing.res.statusCode, 404);
  assert.is(missing.res.headers['x-jetty-error'], 'ERR_TUNNEL_NOT_FOUND');
  const disc = await send(ctx.edge, '', '/_jetty/discovery', { headers: ['Host', `127.0.0.1:${ctx.edge.publicPort}`] });
  assert.is(JSON.parse(disc.body.toString()).transports.grpc.port, ctx.edge.grpcPort);
});

test('a slow public client pauses the origin (bounded buffering on the download path)', async (ctx) => {
  let written = 0;
  let blocked = false;
  let finished = false;
  const total = 512 * MiB;
  const block = Buffer.alloc(64 * 1024, 1);
  ctx.handler = (_req, res) => {
    const pump = (): void => {
      while (written < total) {
        written += block.length;
        if (!res.write(block)) {
          blocked = true;
          res.once('drain', pump);
          return;
        }
      }
      finished = true;
      res.end();
    };
    pump();
  };
  const { req, response } = open(ctx, '/big');
  req.end();
  const res = await response;
  res.pause();
  await waitFor(() => blocked, 5000, 'origin to be paused');
  // Settle: the origin stops well short of the body once every window along the path is full.
  let last = -1;
  await waitFor(() => {
    const stable = written === last;
    last = written;
    return stable;
  }, 10000, 'origin writes to stop');
  assert.ok(!finished, 'origin finished although nobody read');
  // Named bounds: 2 HTTP/2 stream windows (edge JS + in flight) plus socket buffers on four hops.
  assert.ok(written < 48 * MiB, `origin wrote ${written} bytes before pausing`);
  res.destroy();
  req.destroy();
});

test('a slow origin pauses the public client (bounded buffering on the upload path)', async (ctx) => {
  let originReq: IncomingMessage | undefined;
  let originRes: ServerResponse | undefined;
  ctx.handler = (req, res) => {
    originReq = req;
    originRes = res;
    req.pause();
  };
  const { req } = open(ctx, '/slow-upload', 'POST');
  req.on('error', () => undefined);
  const block = Buffer.alloc(64 * 1024, 2);
  let accepted = 0;
  let blocked = false;
  const pump = (): void => {
    while (accepted < 512 * MiB) {
      accepted += block.length;
      if (!req.write(block)) {
        blocked = true;
        req.once('drain', pump);
        return;
      }
    }
  };
  pump();
  await waitFor(() => originReq !== undefined, 5000, 'origin request');
  let last = -1;
  await waitFor(() => {
    const stable = blocked && accepted === last;
    last = accepted;
    return stable;
  }, 10000, 'client writes to stop');
  assert.ok(accepted < 48 * MiB, `client pushed ${accepted} bytes into a stalled origin`);
  originRes?.destroy();
  req.destroy();
});

test('a stalled exchange does not delay another one on the same agent', async (ctx) => {
  const block = Buffer.alloc(256 * 1024, 3);
  ctx.handler = (req, res) => {
    if (req.url === '/stall') {
      const pump = (): void => {
        while (res.write(block));
        res.once('drain', pump);
      };
      pump();
      res.on('close', () => res.removeAllListeners('drain'));
      return;
    }
    res.end('quick');
  };
  const stalled = open(ctx, '/stall');
  stalled.req.end();
  const stalledRes = await stalled.response;
  stalledRes.pause();
  await once(stalledRes, 'readable').catch(() => undefined);
  const started = Date.now();
  const quick = await send(ctx.edge, NAME, '/quick');
  assert.is(quick.body.toString(), 'quick');
  assert.ok(Date.now() - started < 2000, 'second exchange was held up');
  stalledRes.destroy();
});

test('a client that leaves mid-upload makes the agent abort the origin request within 1 s', async (ctx) => {
  let originReq: IncomingMessage | undefined;
  let abortedAt = 0;
  ctx.handler = (req) => {
    originReq = req;
    req.on('close', () => (abortedAt = Date.now()));
    req.resume();
  };
  const { req } = open(ctx, '/abort', 'POST');
  req.on('error', () => undefined);
  req.write(Buffer.alloc(100_000));
  await waitFor(() => originReq !== undefined, 5000, 'origin request');
  const leftAt = Date.now();
  req.destroy();
  await waitFor(() => abortedAt > 0, 2000, 'origin request to be aborted');
  assert.ok(abortedAt - leftAt < 1000, `origin saw the abort after ${abortedAt - leftAt} ms`);
});

test('a client that leaves a long poll makes the agent abort the origin request', async (ctx) => {
  let closed = false;
  let started = false;
  ctx.handler = (req) => {
    started = true;
    req.on('close', () => (closed = true));
  };
  const { req } = open(ctx, '/long-poll');
  req.on('error', () => undefined);
  req.end();
  await waitFor(() => started, 5000, 'origin request');
  req.destroy();
  await waitFor(() => closed, 1000, 'origin request to be aborted');
});

test('an origin that resets mid-response aborts the public response (no complete-looking body)', async (ctx) => {
  ctx.handler = (_req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write(Buffer.alloc(100));
    setImmediate(() => res.destroy());
  };
  const { req, response } = open(ctx, '/reset');
  req.end();
  const res = await response;
  const outcome = await readAll(res).then(
    () => (res.complete ? 'complete' : 'incomplete'),
    () => 'error',
  );
  assert.is.not(outcome, 'complete');
});

test('an origin that refuses connections gives 502', async (ctx) => {
  const closedOrigin = await startOrigin((_req, res) => res.end());
  await closedOrigin.close();
  const agent = await startAgent(ctx.edge, closedOrigin.url, 'refused');
  try {
    const { res } = await send(ctx.edge, 'refused', '/');
    assert.is(res.statusCode, 502);
  } finally {
    await agent.close();
  }
});

test('an agent that dies mid-response aborts the public response; before responding gives 502', async (ctx) => {
  const origin = await startOrigin((req, res) => {
    if (req.url === '/mid') {
      res.writeHead(200);
      res.write('partial');
    }
  });
  let agent = await startAgent(ctx.edge, origin.url, 'dying');
  try {
    const { req, response } = open(ctx, '/mid');
    req.setHeader('host', 'dying.localhost');
    req.end();
    const res = await response;
    await once(res, 'data');
    const ended = readAll(res).then(() => (res.complete ? 'complete' : 'incomplete'), () => 'error');
    await agent.close();
    assert.is.not(await ended, 'complete');

    agent = await startAgent(ctx.edge, origin.url, 'dying');
    const pending = send(ctx.edge, 'dying', '/never');
    await waitFor(() => agent.stats().openExchanges === 1, 5000, 'exchange to reach the agent');
    await agent.close();
    const { res: failed } = await pending;
    assert.is(failed.statusCode, 502);
  } finally {
    await agent.close();
    await origin.close();
  }
});

test('a second agent asking for a live name is refused with ERR_NAME_TAKEN', async (ctx) => {
  ctx.handler = (_req, res) => res.end('still mine');
  try {
    await startAgent(ctx.edge, ctx.origin.url, NAME);
    assert.unreachable('second agent registered');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_NAME_TAKEN', String((err as Error).stack));
  }
  const { body } = await send(ctx.edge, NAME, '/');
  assert.is(body.toString(), 'still mine');
});

test('the agent uses the transport it was asked for', (ctx) => {
  assert.is(ctx.agent.transport, options.transport === 'websocket' ? `websocket/jetty.v1.${options.wsCodec ?? 'proto'}` : 'grpc');
});

test.run();
}
