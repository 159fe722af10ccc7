import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { RequestListener, ServerResponse } from 'node:http';
import { suite } from './suite.js';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { patternBytes, pumpBlocks, readBody, sha256, startAgent, startEdge, startOrigin, waitFor, waitForStable, within, type Origin, type Pumped } from './harness.js';

interface Ctx {
  /** A fresh h2c connection per test: what one test leaves on it cannot disturb the next. */
  session: ClientHttp2Session;
  /** The origin's behaviour for the current test (reset to a plain 'ok' before each). */
  handler: RequestListener;
  edge: Edge;
  agent: Agent;
  origin: Origin;
}

const NAME = 'h2demo';
const MiB = 1024 * 1024;

/** A finished HTTP/2 exchange as the client saw it. */
export interface H2Answer {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
}

/** Opens an h2c session to the edge's public port (prior knowledge). */
export function h2Connect(edge: Edge): ClientHttp2Session {
  const session = connect(`http://127.0.0.1:${edge.publicPort}`);
  session.on('error', () => undefined);
  return session;
}

/** Reads a stream to its end: its response head, body and trailers; rejects on RST_STREAM or error. */
export function h2Answer(stream: ClientHttp2Stream): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const parts: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('error', reject);
    stream.on('end', () => resolve({ headers, body: Buffer.concat(parts), trailers }));
  });
}

/**
 * Public HTTP/2 (h2c with prior knowledge) through a tunnel, run unchanged for every transport and
 * codec (gRPC, WebSocket+protobuf, WebSocket+JSON): `options` picks the agent's transport.
 */
export function publicH2Suite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`e2e/public-h2 (${label})`);
  const authority = (ctx: Ctx): string => `${NAME}.localhost:${ctx.edge.publicPort}`;
  const request = (ctx: Ctx, path: string, headers: OutgoingHttpHeaders = {}, streamOptions = {}): ClientHttp2Stream =>
    ctx.session.request({ ':path': path, ':authority': authority(ctx), ...headers }, streamOptions);

  test.before(async (ctx) => {
    ctx.origin = await startOrigin((req, res) => ctx.handler(req, res));
    ctx.edge = await startEdge();
    ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME, options);
  });

  test.before.each((ctx) => {
    ctx.handler = (_req, res) => res.end('ok');
    ctx.session = h2Connect(ctx.edge);
  });

  test.after.each(async (ctx) => {
    ctx.session.destroy();
    // Every exchange's state is released once the traffic of a test is over.
    await waitFor(() => ctx.edge.stats().openExchanges === 0 && ctx.agent.stats().openExchanges === 0, 10_000, 'open exchanges to reach zero');
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });

  test('64 concurrent streams on one connection each get their own answer, without connection-specific fields', async (ctx) => {
    ctx.handler = (req, res) => {
      void readBody(req).then((body) => {
        // Node's HTTP/1.1 origin adds Connection and Keep-Alive, and chunks (Transfer-Encoding): none may reach an h2 client.
        res.setHeader('x-path', req.url ?? '');
        res.write(`${req.method} ${req.url} ${req.headers.host} `);
        res.end(body);
      });
    };
    const answers = await within(
      Promise.all(
        Array.from({ length: 64 }, (_, i) => {
          const stream = request(ctx, `/s/${i}`, { ':method': 'POST' });
          stream.end(`body-${i}`);
          return h2Answer(stream);
        }),
      ),
      20_000,
      '64 streams',
    );
    answers.forEach((a, i) => {
      assert.is(a.headers[':status'], 200);
      assert.is(a.body.toString(), `POST /s/${i} ${authority(ctx)} body-${i}`);
      assert.is(a.headers['x-path'], `/s/${i}`);
      for (const field of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade']) assert.is(a.headers[field], undefined, field);
    });
  });

  test('64 MiB down and 64 MiB up arrive intact (SHA-256)', async (ctx) => {
    const down = patternBytes(64 * MiB, 7);
    const up = patternBytes(64 * MiB, 11);
    ctx.handler = (req, res) => {
      if (req.url === '/down') return void res.end(down);
      void readBody(req).then((body) => res.end(`${body.length} ${sha256(body)}`));
    };
    const got = await within(h2Answer(request(ctx, '/down').end()), 50_000, '64 MiB download');
    assert.is(got.body.length, down.length);
    assert.is(sha256(got.body), sha256(down));
    const stream = request(ctx, '/up', { ':method': 'POST' });
    stream.end(up);
    const ack = await within(h2Answer(stream), 50_000, '64 MiB upload');
    assert.is(ack.body.toString(), `${up.length} ${sha256(up)}`);
  });

  test('request and response trailers pass both ways', async (ctx) => {
    ctx.handler = (req, res) => {
      void readBody(req).then((body) => {
        res.writeHead(200, { trailer: 'x-checksum' });
        res.write(`got ${body.toString()} with ${req.trailers['x-upload-sum'] ?? 'no trailer'}`);
        res.addTrailers({ 'x-checksum': 'down-sum' });
        res.end();
      });
    };
    const stream = request(ctx, '/t', { ':method': 'POST' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-upload-sum': 'up-sum' }));
    stream.end('data');
    const got = await within(h2Answer(stream), 10_000, 'trailers exchange');
    assert.is(got.body.toString(), 'got data with up-sum');
    assert.is(got.trailers?.['x-checksum'], 'down-sum');
  });

  test('RST_STREAM from the client aborts the origin request', async (ctx) => {
    let originRes: ServerResponse | undefined;
    let originAborted = false;
    ctx.handler = (_req, res) => {
      originRes = res;
      res.writeHead(200);
      res.write('first');
      res.on('close', () => (originAborted = !res.writableFinished));
    };
    const stream = request(ctx, '/hold').end();
    stream.on('error', () => undefined);
    await within(new Promise((resolve) => stream.once('data', resolve)), 10_000, 'first bytes');
    stream.close(constants.NGHTTP2_CANCEL);
    await waitFor(() => originAborted, 10_000, 'the origin to see its request aborted');
    assert.ok(originRes?.destroyed);
  });

  test('an origin failing mid-response is an RST_STREAM to the client, never a clean end', async (ctx) => {
    ctx.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': 1_000_000 });
      res.write('partial', () => res.socket?.destroy());
    };
    const stream = request(ctx, '/cut').end();
    let ended = false;
    stream.on('end', () => (ended = true));
    stream.on('error', () => undefined);
    stream.resume();
    await within(new Promise((resolve) => stream.once('close', resolve)), 10_000, 'the stream to close');
    assert.is.not(stream.rstCode, constants.NGHTTP2_NO_ERROR);
    assert.not.ok(ended, 'the client saw a clean end of a cut body');
  });

  test('a stalled stream holds the origin within the bound and does not slow a fast stream on the same connection', async (ctx) => {
    let pumped: Pumped | undefined;
    const fast = patternBytes(4 * MiB, 3);
    ctx.handler = (req, res) => {
      if (req.url === '/fast') res.end(fast);
      else pumped = pumpBlocks(res, Buffer.alloc(64 * 1024, 1), 512 * MiB, true);
    };
    const slow = request(ctx, '/slow').end();
    slow.on('error', () => undefined);
    slow.pause();
    await waitFor(() => pumped !== undefined, 10_000, 'the slow download to start');
    const got = await within(h2Answer(request(ctx, '/fast').end()), 10_000, 'the fast stream beside a stalled one');
    assert.is(sha256(got.body), sha256(fast));
    await waitForStable(() => pumped!.bytes, 10_000, 'origin writes to stop');
    assert.ok(!pumped!.finished, 'origin finished although nobody read');
    // Named bounds: the public stream's window, two tunnel windows and socket buffers on four hops.
    assert.ok(pumped!.bytes < 48 * MiB, `origin wrote ${pumped!.bytes} bytes before pausing`);
    slow.close(constants.NGHTTP2_CANCEL);
  });

  test('an upload into a stalled origin is held by the stream window; another upload on the connection goes through', async (ctx) => {
    let originRes: ServerResponse | undefined;
    ctx.handler = (req, res) => {
      if (req.url === '/fast-upload') return void readBody(req).then((body) => res.end(sha256(body)));
      originRes = res;
      req.pause();
    };
    const stream = request(ctx, '/slow-upload', { ':method': 'POST' });
    stream.on('error', () => undefined);
    const pumped = pumpBlocks(stream, Buffer.alloc(64 * 1024, 2), 512 * MiB);
    await waitFor(() => originRes !== undefined, 10_000, 'origin request');
    await waitFor(() => pumped.blocked, 10_000, 'the client to be held');
    await waitForStable(() => pumped.bytes, 10_000, 'client writes to stop');
    assert.ok(pumped.bytes < 48 * MiB, `client pushed ${pumped.bytes} bytes into a stalled origin`);
    // The stalled stream's unread bytes hold its own window only, not the connection's.
    const fast = patternBytes(4 * MiB, 5);
    const other = request(ctx, '/fast-upload', { ':method': 'POST' });
    other.end(fast);
    assert.is((await within(h2Answer(other), 10_000, 'an upload beside the stalled one')).body.toString(), sha256(fast));
    originRes?.destroy();
    stream.close(constants.NGHTTP2_CANCEL);
  });

  test(':authority and host that disagree get 400; agreeing ones pass', async (ctx) => {
    const bad = await h2Answer(request(ctx, '/x', { host: `other.localhost:${ctx.edge.publicPort}` }).end());
    assert.is(bad.headers[':status'], 400);
    assert.is(bad.headers['x-jetty-error'], 'ERR_BAD_REQUEST');
    const good = await h2Answer(request(ctx, '/x', { host: authority(ctx).toUpperCase() }).end());
    assert.is(good.headers[':status'], 200);
  });

  test.run();
}
