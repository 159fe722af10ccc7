import { execFile } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import type { Edge } from '../../src/edge/edge-server.js';
import { PUBLIC_H2_MAX_CONCURRENT_STREAMS } from '../../src/edge/public-h2.js';
import { H2_PREFACE } from '../../src/edge/public-listener.js';
import { readBody, startAgent, startEdge, startOrigin, waitFor, within, type Origin } from '../helpers/harness.js';
import { h2Answer, h2Connect } from '../helpers/public-h2-suite.js';
import { jetty, type Running } from '../helpers/process.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';

const run = promisify(execFile);

interface Ctx {
  origin: Origin;
  pki: TestPki;
  /** Closed after each test, last first. */
  cleanup: Array<() => unknown>;
  /** Responses of /hold requests: head and a first part sent, the end left to the test. */
  held: ServerResponse[];
}

const test = suite<Ctx>('e2e/public-h2');

/** Whether this machine's curl speaks HTTP/2 (Debian's does, built with nghttp2). */
async function curlHasHttp2(): Promise<boolean> {
  try {
    return /\bHTTP2\b/.test((await run('curl', ['-V'])).stdout);
  } catch {
    return false;
  }
}
const CURL_H2 = await curlHasHttp2();
if (!CURL_H2) process.stdout.write('e2e/public-h2: curl tests skipped, this machine has no curl with HTTP/2 (apt-get install curl)\n');
const curlTest = CURL_H2 ? test : test.skip;

test.before(async (ctx) => {
  ctx.origin = await startOrigin((req, res) => {
    if (req.url === '/hold') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part\n');
      ctx.held.push(res);
      return;
    }
    void readBody(req).then((body) => res.end(`origin saw ${req.method} ${req.url} ${body.length} proto=${req.headers['x-forwarded-proto']}`));
  });
  ctx.pki = makeTestPki();
  ctx.cleanup = [];
  ctx.held = [];
});

test.after.each(async (ctx) => {
  // Taken out first: the next test starts with an empty list.
  const tasks = ctx.cleanup.splice(0);
  while (tasks.length > 0) await tasks.pop()!();
  ctx.held = [];
});

test.after(async (ctx) => {
  await ctx.origin.close();
  ctx.pki.remove();
});

/** An in-process edge with one gRPC agent for tunnel `name`, both closed after the test. */
async function tunnel(ctx: Ctx, name: string, edgeInit: Parameters<typeof startEdge>[0] = {}): Promise<Edge> {
  const edge = await startEdge(edgeInit);
  ctx.cleanup.push(() => edge.close());
  const edgeUrl = edgeInit.tls ? { edge: new URL(`https://127.0.0.1:${edge.publicPort}`), edgeCa: ctx.pki.ca } : {};
  const agent = await startAgent(edge, ctx.origin.url, name, { transport: 'grpc', ...edgeUrl });
  ctx.cleanup.push(() => agent.close());
  return edge;
}

function session(ctx: Ctx, s: ClientHttp2Session): ClientHttp2Session {
  ctx.cleanup.push(() => s.destroy());
  return s;
}

/** curl through the edge, resolving NAME.localhost to 127.0.0.1 itself; returns the status line and body. */
async function curl(port: number, url: string, args: string[]): Promise<{ status: string; body: string }> {
  const { stdout } = await run('curl', ['-sS', '-i', '--max-time', '20', '--connect-to', `::127.0.0.1:${port}`, ...args, url]);
  const [head, ...body] = stdout.split('\r\n\r\n');
  return { status: head.split('\r\n')[0].trim(), body: body.join('\r\n\r\n') };
}

curlTest('curl --http2-prior-knowledge and HTTP/1.1 share the cleartext public port', async (ctx) => {
  const edge = await tunnel(ctx, 'curl2');
  const url = `http://curl2.localhost:${edge.publicPort}/path?q=1`;
  assert.equal(await curl(edge.publicPort, url, ['--http2-prior-knowledge']), { status: 'HTTP/2 200', body: 'origin saw GET /path?q=1 0 proto=http' });
  assert.equal(await curl(edge.publicPort, url, ['--http2-prior-knowledge', '--data-binary', 'twelve bytes']), {
    status: 'HTTP/2 200',
    body: 'origin saw POST /path?q=1 12 proto=http',
  });
  assert.equal(await curl(edge.publicPort, url, ['--http1.1']), { status: 'HTTP/1.1 200 OK', body: 'origin saw GET /path?q=1 0 proto=http' });
});

test('HTTPS offers ALPN h2 and http/1.1: Node clients get the protocol they ask for', async (ctx) => {
  const edge = await tunnel(ctx, 'alpn', { tls: { cert: ctx.pki.cert, key: ctx.pki.key } });
  const s = session(ctx, connect(`https://127.0.0.1:${edge.publicPort}`, { ca: ctx.pki.ca, servername: 'localhost' }));
  s.on('error', () => undefined);
  const got = await within(h2Answer(s.request({ ':path': '/h2', ':authority': `alpn.localhost:${edge.publicPort}` }).end()), 10_000, 'h2 over TLS');
  assert.is(s.alpnProtocol, 'h2');
  assert.is(got.body.toString(), 'origin saw GET /h2 0 proto=https');
  const http1 = await new Promise<{ alpn: unknown; body: string }>((resolve, reject) => {
    // https.request passes TLS options on to tls.connect, ALPN included, though its type omits it.
    const options: RequestOptions & { ALPNProtocols: string[] } = {
      host: '127.0.0.1',
      port: edge.publicPort,
      path: '/h1',
      headers: { host: `alpn.localhost:${edge.publicPort}` },
      ca: ctx.pki.ca,
      servername: 'localhost',
      agent: false,
      ALPNProtocols: ['http/1.1'],
    };
    const req = httpsRequest(
      options,
      (res) => void readBody(res).then((b) => resolve({ alpn: (res.socket as { alpnProtocol?: unknown }).alpnProtocol, body: b.toString() }), reject),
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(http1, { alpn: 'http/1.1', body: 'origin saw GET /h1 0 proto=https' });
});

curlTest('curl --http2 -k and --http1.1 -k over HTTPS', async (ctx) => {
  const edge = await tunnel(ctx, 'alpn', { tls: { cert: ctx.pki.cert, key: ctx.pki.key } });
  const url = `https://alpn.localhost:${edge.publicPort}/c`;
  assert.is((await curl(edge.publicPort, url, ['--http2', '-k'])).status, 'HTTP/2 200');
  assert.is((await curl(edge.publicPort, url, ['--http1.1', '-k'])).status, 'HTTP/1.1 200 OK');
});

test('an h2 session is bounded: advertised stream cap, header lines, connections per address, idle close', async (ctx) => {
  const edge = await tunnel(ctx, 'limits', { limits: { maxHeaderCount: 20, maxConnectionsPerIp: 2, keepAliveTimeoutMs: 300 } });
  const authority = `limits.localhost:${edge.publicPort}`;
  const first = session(ctx, h2Connect(edge));
  await within(new Promise((resolve) => first.once('remoteSettings', resolve)), 5000, 'SETTINGS');
  assert.is(first.remoteSettings.maxConcurrentStreams, PUBLIC_H2_MAX_CONCURRENT_STREAMS);
  const many: Record<string, string> = { ':path': '/', ':authority': authority };
  for (let i = 0; i < 21; i++) many[`x-h${i}`] = 'v';
  assert.is((await h2Answer(first.request(many).end())).headers[':status'], 431);
  // Far beyond the limit, nghttp2 resets the stream before the head is held in full; the session goes on.
  for (let i = 21; i < 60; i++) many[`x-h${i}`] = 'v';
  const flood = first.request(many).end();
  flood.on('error', () => undefined);
  await within(new Promise((resolve) => flood.once('close', resolve)), 5000, 'the flood stream to be reset');
  assert.is(flood.rstCode, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  // A head over max-header-bytes (SETTINGS_MAX_HEADER_LIST_SIZE) never reaches the router.
  const big = first.request({ ':path': '/', ':authority': authority, 'x-big': 'b'.repeat(20 * 1024) }).end();
  const bigOutcome = await within(h2Answer(big).then((a) => `status ${String(a.headers[':status'])}`, () => `reset ${big.rstCode}`), 5000, 'the oversized head');
  assert.ok(bigOutcome === 'status 431' || (bigOutcome.startsWith('reset') && big.rstCode !== constants.NGHTTP2_NO_ERROR), bigOutcome);
  assert.is((await h2Answer(first.request({ ':path': '/ok', ':authority': authority }).end())).headers[':status'], 200);
  // Two connections from this address are open (the agent's gRPC one goes to another port): a third is closed at accept.
  const second = session(ctx, h2Connect(edge));
  await within(new Promise((resolve) => second.once('remoteSettings', resolve)), 5000, 'second SETTINGS');
  const third = session(ctx, h2Connect(edge));
  await within(new Promise((resolve) => third.once('close', resolve)), 5000, 'the third connection to be refused');
  assert.not.ok(third.remoteSettings?.maxConcurrentStreams === PUBLIC_H2_MAX_CONCURRENT_STREAMS && !third.destroyed);
  // With no stream open, a session is closed after the keep-alive timeout.
  await within(new Promise((resolve) => first.once('close', resolve)), 5000, 'the idle session to be closed');
});

test('the idle timeout applies per h2 stream: a silent response is reset, the connection serves on', async (ctx) => {
  const edge = await tunnel(ctx, 'quiet', { limits: { idleTimeoutMs: 300 } });
  const s = session(ctx, h2Connect(edge));
  const authority = `quiet.localhost:${edge.publicPort}`;
  const stream = s.request({ ':path': '/hold', ':authority': authority }).end();
  stream.on('error', () => undefined);
  stream.resume();
  await within(new Promise((resolve) => stream.once('close', resolve)), 10_000, 'the idle stream to be reset');
  assert.is.not(stream.rstCode, constants.NGHTTP2_NO_ERROR);
  assert.is((await h2Answer(s.request({ ':path': '/after', ':authority': authority }).end())).headers[':status'], 200);
});

test('a preface followed by garbage ends that connection only', async (ctx) => {
  const edge = await tunnel(ctx, 'garbage');
  const raw = netConnect(edge.publicPort, '127.0.0.1');
  ctx.cleanup.push(() => raw.destroy());
  raw.on('error', () => undefined);
  raw.resume();
  raw.write(Buffer.concat([H2_PREFACE, Buffer.alloc(64, 0xff)]));
  await within(new Promise((resolve) => raw.once('close', resolve)), 10_000, 'the edge to close the connection');
  const s = session(ctx, h2Connect(edge));
  assert.is((await h2Answer(s.request({ ':path': '/', ':authority': `garbage.localhost:${edge.publicPort}` }).end())).headers[':status'], 200);
});

test('a head over max-header-bytes sent before the client saw SETTINGS gets 431', async (ctx) => {
  const edge = await tunnel(ctx, 'bighead');
  // Issued at once, this request leaves with the preface, before the edge's SETTINGS can arrive.
  const s = session(ctx, h2Connect(edge));
  const big = s.request({ ':path': '/', ':authority': `bighead.localhost:${edge.publicPort}`, 'x-big': 'b'.repeat(20 * 1024) }).end();
  const got = await within(h2Answer(big), 5000, 'the oversized head');
  assert.is(got.headers[':status'], 431);
  assert.is(got.headers['x-jetty-error'], 'ERR_HEADERS_TOO_LARGE');
});

test('an agent process killed mid-response is an RST_STREAM to the h2 client', async (ctx) => {
  const edge = await startEdge();
  ctx.cleanup.push(() => edge.close());
  const agent: Running = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${edge.publicPort}`, '--name', 'killed', '--transport', 'grpc']);
  ctx.cleanup.push(() => agent.kill());
  await agent.line(/^Forwarding /);
  const s = session(ctx, h2Connect(edge));
  const stream = s.request({ ':path': '/hold', ':authority': `killed.localhost:${edge.publicPort}` }).end();
  let ended = false;
  stream.on('end', () => (ended = true));
  stream.on('error', () => undefined);
  await within(new Promise((resolve) => stream.once('data', resolve)), 10_000, 'the first part');
  agent.child.kill('SIGKILL');
  await within(new Promise((resolve) => stream.once('close', resolve)), 10_000, 'the stream to close');
  assert.is.not(stream.rstCode, constants.NGHTTP2_NO_ERROR);
  assert.not.ok(ended, 'a cut response ended cleanly');
  // The connection itself survives for other streams.
  assert.is((await h2Answer(s.request({ ':path': '/', ':authority': `other.localhost:${edge.publicPort}` }).end())).headers[':status'], 404);
});

test('drain sends GOAWAY to h2 connections: the open stream finishes, no new one opens', async (ctx) => {
  const edge = await tunnel(ctx, 'drained');
  const s = session(ctx, h2Connect(edge));
  const authority = `drained.localhost:${edge.publicPort}`;
  const open = s.request({ ':path': '/hold', ':authority': authority }).end();
  const answer = h2Answer(open);
  answer.catch(() => undefined);
  await waitFor(() => ctx.held.length === 1, 10_000, 'the held request');
  const goaway = new Promise((resolve) => s.once('goaway', resolve));
  const drained = edge.drain();
  await within(goaway, 10_000, 'GOAWAY');
  // After a GOAWAY the client itself may open no stream on this connection.
  assert.throws(() => s.request({ ':path': '/late', ':authority': authority }), (err: { code?: string }) => err.code === 'ERR_HTTP2_GOAWAY_SESSION');
  ctx.held.pop()!.end('the end\n');
  assert.is((await within(answer, 10_000, 'the open stream')).body.toString(), 'first part\nthe end\n');
  await within(drained, 10_000, 'the drain');
});

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is given; ALPN h2 must still be offered. */
function servedCert(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.alpnProtocol === 'h2' ? socket.getPeerCertificate().fingerprint256 : `no h2 by ALPN (${String(socket.alpnProtocol)})`);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('SIGHUP re-reads the certificate: new connections get the new one, open ones go on, a bad file keeps the old', async (ctx) => {
  const next = makeTestPki();
  ctx.cleanup.push(() => next.remove());
  const certPath = join(ctx.pki.dir, 'served-cert.pem');
  const keyPath = join(ctx.pki.dir, 'served-key.pem');
  copyFileSync(ctx.pki.certPath, certPath);
  copyFileSync(ctx.pki.keyPath, keyPath);
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--tls-cert', certPath, '--tls-key', keyPath], { JETTY_LOG_LEVEL: 'info' });
  ctx.cleanup.push(() => edge.kill());
  const port = Number((await edge.line(/^Jetty edge on https:\/\/localhost:(\d+) /))[1]);
  const before = await servedCert(port);
  const open = session(ctx, connect(`https://127.0.0.1:${port}`, { ca: ctx.pki.ca, servername: 'localhost' }));
  open.on('error', () => undefined);
  assert.is((await h2Answer(open.request({ ':path': '/', ':authority': `nobody.localhost:${port}` }).end())).headers[':status'], 404);

  copyFileSync(next.certPath, certPath);
  copyFileSync(next.keyPath, keyPath);
  edge.child.kill('SIGHUP');
  await waitFor(() => edge.stderr.includes('tls certificate reloaded'), 10_000, 'the reload log line');
  const after = await servedCert(port);
  assert.is.not(after, before);
  // The connection opened before the reload still carries new streams.
  assert.is((await h2Answer(open.request({ ':path': '/', ':authority': `nobody.localhost:${port}` }).end())).headers[':status'], 404);

  writeFileSync(certPath, 'not a certificate\n');
  edge.child.kill('SIGHUP');
  await waitFor(() => edge.stderr.includes('tls certificate not reloaded'), 10_000, 'the reload error line');
  assert.is(await servedCert(port), after);
  assert.is(edge.child.exitCode, null, 'the edge exited on a bad reload');
});

test.run();
