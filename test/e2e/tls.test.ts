import { request } from 'node:https';
import * as grpc from '@grpc/grpc-js';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { Agent } from '../../src/agent/agent.js';
import { AGENT_VERSION } from '../../src/agent/negotiate.js';
import { GrpcConnection } from '../../src/agent/grpc-connection.js';
import { WsConnection } from '../../src/agent/ws-connection.js';
import { WS_PROTOCOL_PROTO } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { silentLogger } from '../../src/logger.js';
import { send, startEdge, startOrigin, type Origin } from '../helpers/harness.js';
import { RawGrpcAgent } from '../helpers/raw-grpc-agent.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';

interface Ctx {
  pki: TestPki;
  origin: Origin;
  edge: Edge;
  cleanup: Array<() => unknown>;
}

const test = suite<Ctx>('e2e/tls');

test.before(async (ctx) => {
  ctx.pki = makeTestPki();
  ctx.origin = await startOrigin((req, res) => res.end(`origin saw ${req.url}`));
  ctx.edge = await startEdge({ tls: { cert: ctx.pki.cert, key: ctx.pki.key } });
});

test.before.each((ctx) => {
  ctx.cleanup = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
});

test.after(async (ctx) => {
  await ctx.edge.close();
  await ctx.origin.close();
  ctx.pki.remove();
});

const httpsEdge = (ctx: Ctx): URL => new URL(`https://127.0.0.1:${ctx.edge.publicPort}`);

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    const agent = await p;
    if (agent instanceof Agent) await agent.close();
    return { code: 'accepted', message: '' };
  } catch (err) {
    return { code: String((err as { code?: unknown }).code), message: (err as Error).message };
  }
}

/** GET through the HTTPS public listener, trusting the test CA. */
function httpsGet(ctx: Ctx, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ctx.edge.publicPort, path, headers: { host }, ca: ctx.pki.ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('an agent with --edge-ca registers over gRPC and over WebSocket (wss); traffic flows through the HTTPS listener', async (ctx) => {
  for (const transport of ['grpc', 'websocket'] as const) {
    const name = `tls-${transport}`;
    const agent = await Agent.start({ edge: httpsEdge(ctx), edgeCa: ctx.pki.ca, origin: ctx.origin.url, name, transport, logger: silentLogger() });
    ctx.cleanup.push(() => agent.close());
    assert.is(agent.transport, transport === 'grpc' ? 'grpc' : `websocket/${WS_PROTOCOL_PROTO}`);
    assert.is(agent.url, `https://${name}.localhost:${ctx.edge.publicPort}`);
    assert.equal(await httpsGet(ctx, `${name}.localhost`, '/x'), { status: 200, body: 'origin saw /x' });
  }
});

test('the gRPC listener of a TLS edge speaks no plaintext', async (ctx) => {
  const raw = new RawGrpcAgent(`127.0.0.1:${ctx.edge.grpcPort}`);
  ctx.cleanup.push(() => raw.close());
  const { status } = raw.register({ name: 'plain', version: 'test' });
  assert.is((await status).code, grpc.status.UNAVAILABLE);
});

test('an agent without the CA fails verification with ERR_EDGE_CERTIFICATE naming --edge-ca, on discovery and on each transport', async (ctx) => {
  const refused = await codeOf(Agent.start({ edge: httpsEdge(ctx), origin: ctx.origin.url, name: 'no-ca', logger: silentLogger() }));
  assert.is(refused.code, 'ERR_EDGE_CERTIFICATE');
  assert.match(refused.message, /--edge-ca/);
  // Each transport verifies on its own, whatever discovery said.
  const common = { name: 'no-ca', version: AGENT_VERSION, logger: silentLogger(), onExchange: async () => undefined };
  const viaGrpc = await codeOf(GrpcConnection.connect({ ...common, address: `127.0.0.1:${ctx.edge.grpcPort}`, tls: {}, token: 'never-sent' }));
  assert.is(viaGrpc.code, 'ERR_EDGE_CERTIFICATE', viaGrpc.message);
  const viaWs = await codeOf(
    WsConnection.connect({ ...common, url: `wss://127.0.0.1:${ctx.edge.publicPort}/_jetty/ws`, codec: WS_PROTOCOL_PROTO, windowBytes: 256 * 1024, token: 'never-sent' }),
  );
  assert.is(viaWs.code, 'ERR_EDGE_CERTIFICATE', viaWs.message);
  assert.is(ctx.edge.stats().sessions, 0);
});

test('a plain http:// agent to a TLS edge fails saying the edge speaks HTTPS; plain clients get a 400 that says so', async (ctx) => {
  const plain = await codeOf(Agent.start({ edge: new URL(`http://127.0.0.1:${ctx.edge.publicPort}`), origin: ctx.origin.url, name: 'plain', logger: silentLogger() }));
  assert.is(plain.code, 'ERR_USAGE');
  assert.match(plain.message, /only speaks HTTPS: use --edge https:\/\/127\.0\.0\.1:\d+/);
  const { res, body } = await send(ctx.edge, 'anything', '/');
  assert.is(res.statusCode, 400);
  assert.is(res.headers['x-jetty-error'], 'tls_required');
  assert.match(body.toString(), /HTTPS/);
});

test('an https:// agent to a plain edge fails clearly and never falls back to plaintext', async (ctx) => {
  const plainEdge = await startEdge();
  ctx.cleanup.push(() => plainEdge.close());
  const r = await codeOf(Agent.start({ edge: new URL(`https://127.0.0.1:${plainEdge.publicPort}`), edgeCa: ctx.pki.ca, origin: ctx.origin.url, name: 'down', logger: silentLogger() }));
  assert.is(r.code, 'ERR_AGENT_UNAVAILABLE');
  assert.match(r.message, /does it serve HTTPS/);
  assert.is(plainEdge.stats().sessions, 0);
});

test.run();
