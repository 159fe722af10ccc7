import { once } from 'node:events';
import { constants as h2, type ServerHttp2Stream } from 'node:http2';
import { request, type IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import * as assert from 'uvu/assert';
import { WebSocket, WebSocketServer } from 'ws';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { RequestRecord } from '../../src/agent/origin-proxy.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { patternBytes, send, sha256, startAgent as startAgentWith, startEdge, pumpBlocks, startOrigin, untilStable, waitFor, within, type Origin, type Pumped } from './harness.js';
import { readStream, startH2Origin, startHttpsOrigin, type H2OriginServer, type HttpsOrigin } from './h2-origin-server.js';
import { suite } from './suite.js';
import { makeTestPki, type TestPki } from './tls-certs.js';

interface Ctx {
  edge: Edge;
  pki: TestPki;
  tls: HttpsOrigin;
  h2: H2OriginServer;
  h1: Origin;
  strict: Agent;
  insecure: Agent;
  h2Agent: Agent;
  records: RequestRecord[];
  /** Agents a test starts for itself, closed after it. */
  extra: Agent[];
}

const MiB = 1024 * 1024;
const H2_NAME = 'h2';
/**
 * Most bytes a writer may push into a stalled exchange: HTTP/2 and tunnel windows (a few MiB each) and
 * socket buffers along four hops, far below the 512 MiB the writer would send.
 */
const STALL_BOUND_BYTES = 48 * MiB;

/**
 * Origins other than plain HTTP/1.1 (issue 10 item 3), run by every transport and codec: HTTPS with and
 * without --origin-insecure, an h2c origin behind a public HTTP/1.1 client (bodies, trailers, cancellation,
 * bounded buffering, the stream cap), --host-header and a base path on the origin URL.
 */
export function originSuite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`e2e/origins (${label})`);
  const startAgent = (edge: Edge, origin: URL, name: string, more: Partial<AgentInit> = {}): Promise<Agent> =>
    startAgentWith(edge, origin, name, { ...options, ...more });

  test.before(async (ctx) => {
    ctx.records = [];
    ctx.extra = [];
    ctx.pki = makeTestPki();
    ctx.tls = await startHttpsOrigin(ctx.pki.cert, ctx.pki.key, (req, res) => {
      res.end(`${req.url} host=${req.headers.host} sni=${(req.socket as TLSSocket).servername || '-'}`);
    });
    ctx.h2 = await startH2Origin();
    ctx.h1 = await startOrigin((req, res) => res.end(`${req.url} host=${req.headers.host}`));
    ctx.edge = await startEdge();
    const tlsUrl = new URL(`https://localhost:${ctx.tls.port}`);
    ctx.strict = await startAgent(ctx.edge, tlsUrl, 'strict');
    ctx.strict.on('request', (r) => ctx.records.push(r));
    ctx.insecure = await startAgent(ctx.edge, tlsUrl, 'insecure', { originInsecure: true });
    ctx.h2Agent = await startAgent(ctx.edge, ctx.h2.url, H2_NAME);
  });

  test.after.each(async (ctx) => {
    for (const a of ctx.extra.splice(0)) await a.close();
    await waitFor(() => ctx.edge.stats().openExchanges === 0 && ctx.h2Agent.stats().openExchanges === 0, 5000, 'open exchanges to reach zero');
  });

  test.after(async (ctx) => {
    await Promise.all([ctx.strict.close(), ctx.insecure.close(), ctx.h2Agent.close()]);
    await ctx.edge.close();
    await Promise.all([ctx.tls.close(), ctx.h2.close(), ctx.h1.close()]);
    ctx.pki.remove();
  });

  /** A public HTTP/1.1 request to tunnel `name` (for streaming tests: the caller ends it). */
  function open(ctx: Ctx, name: string, path: string, method = 'GET', headers: Record<string, string> = {}) {
    const req = request({ host: '127.0.0.1', port: ctx.edge.publicPort, path, method, headers: { host: `${name}.localhost`, ...headers }, agent: false });
    req.on('error', () => undefined);
    const response = once(req, 'response').then(([res]) => res as IncomingMessage);
    response.catch(() => undefined);
    return { req, response };
  }

  test('an https origin whose certificate does not verify is a 502, and the log names the certificate', async (ctx) => {
    const { res } = await send(ctx.edge, 'strict', '/x');
    assert.is(res.statusCode, 502);
    await waitFor(() => ctx.records.length > 0, 5000, 'the request log entry');
    assert.match(ctx.records[0].err ?? '', /origin certificate refused/);
  });

  test('with originInsecure the https origin answers, SNI naming the origin host, not the public one', async (ctx) => {
    const { res, body } = await send(ctx.edge, 'insecure', '/y?z=1');
    assert.is(res.statusCode, 200);
    assert.is(body.toString(), `/y?z=1 host=insecure.localhost:${ctx.edge.publicPort} sni=localhost`);
  });

  test('an Upgrade to an https origin switches over TLS with originInsecure, and is a 502 without it', async (ctx) => {
    const wss = new WebSocketServer({ server: ctx.tls.server });
    wss.on('connection', (ws, req) => ws.on('message', (m) => ws.send(`${req.url} ${String(m)}`)));
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${ctx.edge.publicPort}/ws`, { headers: { host: 'insecure.localhost' } });
      await within(once(ws, 'open'), 5000, 'the WebSocket to open');
      ws.send('hi');
      const [msg] = await within(once(ws, 'message'), 5000, 'the echo');
      assert.is(String(msg), '/ws hi');
      ws.close();
      await once(ws, 'close');
      const refused = new WebSocket(`ws://127.0.0.1:${ctx.edge.publicPort}/ws`, { headers: { host: 'strict.localhost' } });
      refused.on('error', () => undefined);
      const [, res] = (await within(once(refused, 'unexpected-response'), 5000, 'the refusal')) as [unknown, IncomingMessage];
      assert.is(res.statusCode, 502);
      res.destroy();
    } finally {
      wss.close();
    }
  });

  test('h2c origin: 64 MiB up and down arrive intact (SHA-256), the public Host is :authority', async (ctx) => {
    const payload = patternBytes(64 * MiB, 11);
    const expected = sha256(payload);
    let authority = '';
    ctx.h2.handler = (stream, headers) => {
      authority = String(headers[':authority']);
      if (headers[':method'] === 'POST') {
        void readStream(stream).then((got) => {
          stream.respond({ ':status': 200 });
          stream.end(sha256(got));
        });
      } else {
        stream.respond({ ':status': 200, 'content-length': String(payload.length) });
        stream.end(payload);
      }
    };
    const up = await send(ctx.edge, H2_NAME, '/up', { method: 'POST', body: payload });
    assert.is(up.body.toString(), expected);
    const down = await send(ctx.edge, H2_NAME, '/down');
    assert.is(down.res.statusCode, 200);
    assert.is(sha256(down.body), expected);
    assert.is(authority, `${H2_NAME}.localhost:${ctx.edge.publicPort}`);
  });

  test('h2c origin: chunked request trailers reach it and its trailers reach the HTTP/1.1 client', async (ctx) => {
    let seenTrailers: Record<string, unknown> = {};
    let te = '';
    ctx.h2.handler = (stream, headers) => {
      te = String(headers.te);
      stream.on('trailers', (t) => (seenTrailers = t));
      void readStream(stream).then((body) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
        stream.end(body);
      });
    };
    const { req, response } = open(ctx, H2_NAME, '/t', 'POST', { trailer: 'x-checksum' });
    req.write('hello ');
    req.addTrailers({ 'x-checksum': 'abc' });
    req.end('world');
    const res = await response;
    const body = await readStream(res);
    assert.is(body.toString(), 'hello world');
    assert.is(res.trailers['grpc-status'], '0');
    assert.is(res.trailers['grpc-message'], 'fine');
    assert.is(seenTrailers['x-checksum'], 'abc');
    assert.is(te, 'trailers');
  });

  test('h2c origin: Expect: 100-continue gets the origin\'s 100 before the client sends its body', async (ctx) => {
    ctx.h2.handler = (stream, headers) => {
      if (headers.expect === '100-continue') stream.additionalHeaders({ ':status': 100 });
      void readStream(stream).then((body) => {
        stream.respond({ ':status': 200 });
        stream.end(`got ${body.toString()}`);
      });
    };
    const { req, response } = open(ctx, H2_NAME, '/expect', 'POST', { expect: '100-continue', 'content-length': '4' });
    await within(once(req, 'continue'), 5000, 'the 100 Continue');
    req.end('body');
    const res = await response;
    assert.is((await readStream(res)).toString(), 'got body');
  });

  test('h2c origin: a gRPC trailers-only answer (END_STREAM on its head) arrives with its status as trailers', async (ctx) => {
    ctx.h2.handler = (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'nope' }, { endStream: true });
    const { res, body } = await send(ctx.edge, H2_NAME, '/only');
    assert.is(res.statusCode, 200);
    assert.is(res.headers['content-type'], 'application/grpc');
    assert.is(res.headers['grpc-status'], undefined);
    assert.is(res.trailers['grpc-status'], '5');
    assert.is(res.trailers['grpc-message'], 'nope');
    assert.is(body.length, 0);
  });

  test('h2c origin: a public client that goes away cancels the origin stream (RST_STREAM CANCEL)', async (ctx) => {
    let originStream: ServerHttp2Stream | undefined;
    ctx.h2.handler = (stream) => {
      originStream = stream;
      stream.respond({ ':status': 200 });
      stream.write('first');
    };
    const { req, response } = open(ctx, H2_NAME, '/hang');
    req.end();
    const res = await response;
    await once(res, 'data');
    const closed = once(originStream!, 'close');
    res.destroy();
    req.destroy();
    await within(closed, 5000, 'the origin stream to close');
    assert.is(originStream!.rstCode, h2.NGHTTP2_CANCEL);
  });

  test('h2c origin: an origin RST_STREAM mid-response cuts the public response, never a complete one', async (ctx) => {
    ctx.h2.handler = (stream) => {
      stream.respond({ ':status': 200 });
      // destroy(err) sends RST_STREAM alone; Node's close(code) would end the stream cleanly first.
      stream.write('partial', () => stream.destroy(new Error('origin fault')));
    };
    const { req, response } = open(ctx, H2_NAME, '/reset');
    req.end();
    const res = await response;
    const outcome = await within(
      readStream(res).then(
        () => (res.statusCode === 502 ? 'status 502' : res.complete ? 'complete' : 'cut'),
        () => 'cut',
      ),
      5000,
      'the response to end',
    );
    // The edge may still hold the head when the reset comes: then the whole answer is a 502.
    assert.ok(outcome === 'cut' || outcome === 'status 502', outcome);
  });

  test('h2c origin: a slow public client pauses the origin (bounded buffering on the download path)', async (ctx) => {
    let pump: Pumped | undefined;
    ctx.h2.handler = (stream) => {
      stream.respond({ ':status': 200 });
      pump = pumpBlocks(stream, Buffer.alloc(64 * 1024, 5), 512 * MiB, true);
    };
    const { req, response } = open(ctx, H2_NAME, '/big');
    req.end();
    const res = await response;
    res.pause();
    await waitFor(() => pump?.blocked === true, 5000, 'the origin to feel backpressure');
    await untilStable(() => pump!.bytes, 10000, 'origin writes to stop');
    const written = pump!.bytes;
    // Far short of the body: the agent's H2_ORIGIN_STREAM_WINDOW_BYTES, the tunnel's window and socket buffers.
    assert.ok(!pump!.finished && written < STALL_BOUND_BYTES, `origin wrote ${written} bytes before pausing`);
    res.destroy();
  });

  test('h2c origin: a slow origin pauses the public client (bounded buffering on the upload path)', async (ctx) => {
    let originStream: ServerHttp2Stream | undefined;
    ctx.h2.handler = (stream) => {
      originStream = stream;
      stream.pause();
    };
    const { req } = open(ctx, H2_NAME, '/slow-upload', 'POST');
    const pump = pumpBlocks(req, Buffer.alloc(64 * 1024, 6), 512 * MiB);
    await waitFor(() => originStream !== undefined && pump.blocked, 10000, 'the origin stream, and the client to feel backpressure');
    await untilStable(() => pump.bytes, 10000, 'client writes to stop');
    const accepted = pump.bytes;
    assert.ok(accepted < STALL_BOUND_BYTES, `client pushed ${accepted} bytes into a stalled origin`);
    originStream!.close(h2.NGHTTP2_CANCEL);
    req.destroy();
  });

  test('h2c origin: exchanges beyond the SETTINGS_MAX_CONCURRENT_STREAMS the origin advertises wait, then all complete', async (ctx) => {
    const limited = await startH2Origin({ maxConcurrentStreams: 2 });
    try {
      const agent = await startAgent(ctx.edge, limited.url, 'limited');
      ctx.extra.push(agent);
      let inFlight = 0;
      let most = 0;
      const held: ServerHttp2Stream[] = [];
      limited.handler = (stream) => {
        inFlight++;
        most = Math.max(most, inFlight);
        stream.on('close', () => inFlight--);
        held.push(stream);
      };
      const sends = Array.from({ length: 6 }, (_, i) => send(ctx.edge, 'limited', `/c${i}`));
      // Answer whatever is held, one wave after another, until all six are done.
      let answered = 0;
      while (answered < 6) {
        await waitFor(() => held.length > 0, 5000, 'a held stream');
        for (const s of held.splice(0)) {
          s.respond({ ':status': 200 });
          s.end('ok');
          answered++;
        }
      }
      const results = await Promise.all(sends);
      assert.ok(results.every((r) => r.res.statusCode === 200));
      assert.ok(most <= 2, `${most} streams at once`);
    } finally {
      await limited.close();
    }
  });

  test('h2c origin: after the origin sends GOAWAY and closes, the next exchange opens a new connection', async (ctx) => {
    ctx.h2.handler = (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    };
    assert.is((await send(ctx.edge, H2_NAME, '/before')).res.statusCode, 200);
    const before = ctx.h2.sessionCount;
    ctx.h2.goAway();
    await waitFor(() => ctx.h2.openSessions === 0, 5000, 'the origin sessions to close');
    const after = await send(ctx.edge, H2_NAME, '/after');
    assert.is(after.res.statusCode, 200);
    assert.is(after.body.toString(), 'ok');
    assert.is(ctx.h2.sessionCount, before + 1);
  });

  test('--host-header: preserve sends the public Host, rewrite the origin host:port, a literal itself (h1 Host and h2 :authority)', async (ctx) => {
    const port = ctx.edge.publicPort;
    const rewrite = await startAgent(ctx.edge, ctx.h1.url, 'rewrite', { hostHeader: 'rewrite' });
    const literal = await startAgent(ctx.edge, ctx.h1.url, 'literal', { hostHeader: 'api.internal:9000' });
    const h2Literal = await startAgent(ctx.edge, ctx.h2.url, 'h2literal', { hostHeader: 'grpc.internal' });
    ctx.extra.push(rewrite, literal, h2Literal);
    assert.is((await send(ctx.edge, 'rewrite', '/a')).body.toString(), `/a host=127.0.0.1:${ctx.h1.port}`);
    assert.is((await send(ctx.edge, 'literal', '/a')).body.toString(), '/a host=api.internal:9000');
    ctx.h2.handler = (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(`${headers[':authority']} host=${headers.host ?? '-'}`);
    };
    assert.is((await send(ctx.edge, 'h2literal', '/a')).body.toString(), 'grpc.internal host=-');
    assert.is((await send(ctx.edge, H2_NAME, '/a')).body.toString(), `${H2_NAME}.localhost:${port} host=-`);
  });

  test('a path on the origin URL is a base path every target goes under', async (ctx) => {
    const based = await startAgent(ctx.edge, new URL(`${ctx.h1.url.origin}/base/`), 'based');
    ctx.extra.push(based);
    assert.is((await send(ctx.edge, 'based', '/x/y?q=1')).body.toString(), `/base/x/y?q=1 host=based.localhost:${ctx.edge.publicPort}`);
  });

  test.run();
}
