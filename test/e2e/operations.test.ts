import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { createToken } from '../../src/edge/tokens.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from '../helpers/harness.js';

const test = suite<{ origin: Origin; cleanup: Array<() => Promise<unknown>> }>('e2e/operations');

test.before(async (ctx) => {
  ctx.origin = await startOrigin((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('slow'), 300);
    if (req.url === '/silent') return; // never answers
    if (req.url === '/drip') {
      // Streams for 2.5 s with a gap of 300 ms: longer than the idle timeout in total, never idle.
      res.writeHead(200);
      let n = 0;
      const t = setInterval(() => {
        res.write(`tick ${n++}\n`);
        if (n === 8) {
          clearInterval(t);
          res.end();
        }
      }, 300);
      return;
    }
    res.end(`${req.headers['x-request-id'] ?? '-'}|${req.headers['x-forwarded-for']}`);
  });
});

test.before.each((ctx) => {
  ctx.cleanup = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
});

test.after(async (ctx) => {
  await ctx.origin.close();
});

async function edgeWith(ctx: { cleanup: Array<() => Promise<unknown>> }, init: Parameters<typeof startEdge>[0]): Promise<Edge> {
  const edge = await startEdge(init);
  ctx.cleanup.push(() => edge.close());
  return edge;
}

async function agentOn(ctx: { origin: Origin; cleanup: Array<() => Promise<unknown>> }, edge: Edge, name: string, token?: string): Promise<Agent> {
  const agent = await startAgent(edge, ctx.origin.url, name, { token });
  ctx.cleanup.push(() => agent.close());
  return agent;
}

async function refusal(p: Promise<Agent>): Promise<string> {
  let agent: Agent;
  try {
    agent = await p;
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
  await agent.close();
  return 'accepted';
}

test('tokens: missing or wrong token is ERR_UNAUTHORIZED, a name outside the scope ERR_NAME_NOT_ALLOWED', async (ctx) => {
  const dev = createToken();
  const edge = await edgeWith(ctx, { tokens: [{ hash: dev.hash, names: ['dev-*', 'exact'] }] });
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'dev-a')), 'ERR_UNAUTHORIZED');
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'dev-a', { token: 'jt_wrong' })), 'ERR_UNAUTHORIZED');
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'prod', { token: dev.token })), 'ERR_NAME_NOT_ALLOWED');
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'exact', { token: dev.token, transport: 'websocket' })), 'accepted');
  await agentOn(ctx, edge, 'dev-a', dev.token);
  assert.is((await send(edge, 'dev-a', '/')).res.statusCode, 200);
  assert.is(edge.stats().sessions, 1);
});

test('tokens: a name held by another token is refused (ERR_NAME_TAKEN)', async (ctx) => {
  const [a, b] = [createToken(), createToken()];
  const edge = await edgeWith(ctx, { tokens: [{ hash: a.hash, names: ['*'] }, { hash: b.hash, names: ['*'] }] });
  await agentOn(ctx, edge, 'shared', a.token);
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'shared', { token: b.token })), 'ERR_NAME_TAKEN');
});

test('pools: agents with the same token and name share the load; a draining one gets nothing new', async (ctx) => {
  const t = createToken();
  const edge = await edgeWith(ctx, { tokens: [{ hash: t.hash, names: ['pool'] }] });
  const one = await agentOn(ctx, edge, 'pool', t.token);
  const two = await agentOn(ctx, edge, 'pool', t.token);
  const served = new Map<Agent, number>([[one, 0], [two, 0]]);
  one.on('request', () => served.set(one, served.get(one)! + 1));
  two.on('request', () => served.set(two, served.get(two)! + 1));
  // Concurrent slow requests: the fewest-in-flight rule spreads them over both.
  await Promise.all(Array.from({ length: 8 }, () => send(edge, 'pool', '/slow')));
  await waitFor(() => served.get(one)! + served.get(two)! === 8);
  assert.ok(served.get(one)! >= 2 && served.get(two)! >= 2, `spread ${served.get(one)}/${served.get(two)}`);
  const leaving = one.leave(5_000);
  await Promise.all(Array.from({ length: 4 }, () => send(edge, 'pool', '/')));
  await leaving;
  await waitFor(() => served.get(two)! === 8, 2000, 'the remaining agent to serve the rest');
});

test('restarting an agent under steady load: requests wait out the reconnect grace instead of failing', async (ctx) => {
  const edge = await edgeWith(ctx, { reconnectGraceMs: 5_000 });
  let agent = await startAgent(edge, ctx.origin.url, 'steady');
  let failed = 0;
  let done = 0;
  const failures: string[] = [];
  let stop = false;
  const load = (async () => {
    while (!stop) {
      const { res, body } = await send(edge, 'steady', '/').catch((err: Error) => ({ res: { statusCode: 0 }, body: Buffer.from(err.message) }));
      if (res.statusCode === 200) done++;
      else {
        failed++;
        failures.push(`${res.statusCode} ${body.toString().trim()}`);
      }
    }
  })();
  await waitFor(() => done >= 20);
  await agent.leave(5_000); // SIGTERM path: finish in flight, leave
  agent = await startAgent(edge, ctx.origin.url, 'steady');
  const after = done;
  await waitFor(() => done >= after + 20);
  stop = true;
  await load;
  await agent.close();
  assert.is(failed, 0, `${failed} of ${done + failed} requests failed across the restart: ${failures.join('; ')}`);
});

test('limits: per-tunnel requests/s and concurrency answer 429 with Retry-After', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { tunnelRps: 2, tunnelMaxExchanges: 1 } });
  await agentOn(ctx, edge, 'limited');
  const first = send(edge, 'limited', '/slow');
  await waitFor(() => edge.stats().openExchanges === 1);
  const busy = await send(edge, 'limited', '/');
  assert.is(busy.res.statusCode, 429);
  assert.is(busy.res.headers['retry-after'], '1');
  assert.is((await first).res.statusCode, 200);
  const rate = await send(edge, 'limited', '/');
  assert.is(rate.res.statusCode, 429, 'third request within a second (2 tokens, 1 spent by each earlier request)');
  assert.ok(Number(rate.res.headers['retry-after']) >= 1);
  const text = await (await fetch(`http://127.0.0.1:${edge.publicPort}/_jetty/discovery`)).text();
  assert.ok(text.includes('grpc'));
  const metrics = await edge.metrics.registry.metrics();
  assert.match(metrics, /jetty_limit_rejections_total\{limit="tunnel_exchanges"\} 1/);
  assert.match(metrics, /jetty_limit_rejections_total\{limit="tunnel_rps"\} 1/);
});

test('limits: too many header lines or bytes answer 431', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { maxHeaderCount: 10, maxHeaderBytes: 2048 } });
  await agentOn(ctx, edge, 'heads');
  const many: Record<string, string> = {};
  for (let i = 0; i < 12; i++) many[`x-h${i}`] = 'v';
  assert.is((await send(edge, 'heads', '/', { headers: many })).res.statusCode, 431);
  const big = await send(edge, 'heads', '/', { headers: { 'x-big': 'x'.repeat(4096) } }).catch((err: Error) => err);
  assert.is(big instanceof Error ? 'closed' : big.res.statusCode, 431);
});

test('limits: a client that sends its head too slowly is cut off', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { headerTimeoutMs: 1000 } });
  const socket = connect(edge.publicPort, '127.0.0.1');
  socket.write('GET / HTTP/1.1\r\nHost: x.localhost\r\n');
  const started = Date.now();
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await once(socket, 'close');
  assert.ok(Date.now() - started < 5000);
  assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1.1 408/);
});

test('limits: an exchange idle past the idle timeout gets 504, a slow stream that never idles is not cut', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { idleTimeoutMs: 1000 } });
  await agentOn(ctx, edge, 'idle');
  const silent = await send(edge, 'idle', '/silent');
  assert.is(silent.res.statusCode, 504);
  const drip = await send(edge, 'idle', '/drip');
  assert.is(drip.res.statusCode, 200);
  assert.is(drip.body.toString().split('\n').length, 9);
});

test('limits: agents beyond max-agents are refused', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { maxAgents: 1 } });
  await agentOn(ctx, edge, 'first');
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'second')), 'ERR_AGENT_UNAVAILABLE');
});

test('limits: agents beyond max-agents-per-ip are refused on both transports until one leaves', async (ctx) => {
  const edge = await edgeWith(ctx, { limits: { maxAgentsPerIp: 2 } });
  const first = await startAgent(edge, ctx.origin.url, 'ip-a', { transport: 'grpc' });
  const second = await startAgent(edge, ctx.origin.url, 'ip-b', { transport: 'websocket' });
  ctx.cleanup.push(() => second.close());
  for (const transport of ['grpc', 'websocket'] as const) {
    assert.is(await refusal(startAgent(edge, ctx.origin.url, 'ip-c', { transport })), 'ERR_AGENT_UNAVAILABLE', transport);
  }
  await first.close();
  await waitFor(() => edge.stats().sessions === 1, 2000, 'the first session to go');
  await agentOn(ctx, edge, 'ip-c');
  assert.match(await edge.metrics.registry.metrics(), /jetty_limit_rejections_total\{limit="agents_per_ip"\} 2/);
});

test('limits: agents beyond max-agents-per-token are refused, even in the token\'s own pool; other tokens are not counted', async (ctx) => {
  const [a, b] = [createToken(), createToken()];
  const edge = await edgeWith(ctx, { tokens: [{ hash: a.hash, names: ['*'] }, { hash: b.hash, names: ['*'] }], limits: { maxAgentsPerToken: 1 } });
  await agentOn(ctx, edge, 'pooled', a.token);
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'pooled', { token: a.token, transport: 'grpc' })), 'ERR_AGENT_UNAVAILABLE');
  assert.is(await refusal(startAgent(edge, ctx.origin.url, 'another', { token: a.token, transport: 'websocket' })), 'ERR_AGENT_UNAVAILABLE');
  await agentOn(ctx, edge, 'theirs', b.token);
  assert.match(await edge.metrics.registry.metrics(), /jetty_limit_rejections_total\{limit="agents_per_token"\} 2/);
});

test('request ids: generated by the edge and sent to the origin; kept only from trusted proxies', async (ctx) => {
  const edge = await edgeWith(ctx, { trustedProxies: [] });
  await agentOn(ctx, edge, 'ids');
  const untrusted = await send(edge, 'ids', '/', { headers: { 'x-request-id': 'from-client', 'x-forwarded-for': '6.6.6.6' } });
  const [id, xff] = untrusted.body.toString().split('|');
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.is(xff, '127.0.0.1');
  const trustedEdge = await edgeWith(ctx, { trustedProxies: ['127.0.0.1'] });
  await agentOn(ctx, trustedEdge, 'ids');
  const trusted = await send(trustedEdge, 'ids', '/', { headers: { 'x-request-id': 'from-lb', 'x-forwarded-for': '10.0.0.9' } });
  assert.is(trusted.body.toString(), 'from-lb|10.0.0.9, 127.0.0.1');
});

test('trusted-proxies: CIDR blocks match, and an IPv4 peer on a dual-stack listener (::ffff:127.0.0.1) matches its IPv4 block', async (ctx) => {
  // Listening on [::] makes Node report IPv4 peers as ::ffff:a.b.c.d, which an exact-string match missed.
  for (const [listen, trusted] of [['127.0.0.1:0', ['127.0.0.0/8']], ['[::]:0', ['127.0.0.1/32']], ['[::]:0', ['::ffff:127.0.0.0/104']]] as const) {
    const edge = await edgeWith(ctx, { listen, allowOpen: true, trustedProxies: trusted });
    await agentOn(ctx, edge, 'cidr');
    const { body } = await send(edge, 'cidr', '/', { headers: { 'x-request-id': 'from-lb', 'x-forwarded-for': '10.0.0.9' } });
    assert.match(body.toString(), /^from-lb\|10\.0\.0\.9, /, `${listen} trusting ${trusted.join(',')}`);
  }
  const untrusting = await edgeWith(ctx, { listen: '[::]:0', allowOpen: true, trustedProxies: ['10.0.0.0/8', 'fd00::/8'] });
  await agentOn(ctx, untrusting, 'cidr');
  const { body } = await send(untrusting, 'cidr', '/', { headers: { 'x-request-id': 'from-client' } });
  assert.not.match(body.toString(), /from-client/);
});

test('reserved names are refused on both transports unless configured away or granted to a token by exact name', async (ctx) => {
  const edge = await edgeWith(ctx, {});
  for (const transport of ['grpc', 'websocket'] as const) {
    assert.is(await refusal(startAgent(edge, ctx.origin.url, 'www', { transport })), 'ERR_NAME_NOT_ALLOWED', transport);
    assert.is(await refusal(startAgent(edge, ctx.origin.url, 'admin', { transport })), 'ERR_NAME_NOT_ALLOWED', transport);
  }
  const custom = await edgeWith(ctx, { reservedNames: ['billing'] });
  assert.is(await refusal(startAgent(custom, ctx.origin.url, 'billing')), 'ERR_NAME_NOT_ALLOWED');
  await agentOn(ctx, custom, 'www');
  assert.is((await send(custom, 'www', '/')).res.statusCode, 200);
  const [exact, wildcard] = [createToken(), createToken()];
  const tokenEdge = await edgeWith(ctx, { tokens: [{ hash: exact.hash, names: ['api'] }, { hash: wildcard.hash, names: ['*'] }] });
  assert.is(await refusal(startAgent(tokenEdge, ctx.origin.url, 'api', { token: wildcard.token })), 'ERR_NAME_NOT_ALLOWED');
  await agentOn(ctx, tokenEdge, 'api', exact.token);
  assert.is((await send(tokenEdge, 'api', '/')).res.statusCode, 200);
});

test('admin: /livez, /readyz with counts, /metrics in Prometheus format; /readyz 503 while draining', async (ctx) => {
  const edge = await startEdge({ adminListen: '127.0.0.1:0', gracePeriodMs: 5_000 });
  ctx.cleanup.push(() => edge.close());
  const agent = await agentOn(ctx, edge, 'adm');
  const admin = `http://127.0.0.1:${edge.adminPort}`;
  assert.is((await fetch(`${admin}/livez`)).status, 200);
  const ready = await fetch(`${admin}/readyz`);
  assert.is(ready.status, 200);
  assert.equal(await ready.json(), { status: 'ready', agents: 1, exchanges: 0 });
  await send(edge, 'adm', '/');
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  for (const name of [
    'jetty_requests_total{code="200",transport="grpc"} 1',
    'jetty_request_duration_seconds_bucket',
    'jetty_received_bytes_total',
    'jetty_sent_bytes_total',
    'jetty_open_exchanges 0',
    'jetty_agent_sessions{transport="grpc"} 1',
    'jetty_registrations_total{result="ok"} 1',
    'jetty_agent_ping_rtt_seconds',
  ]) {
    assert.ok(metrics.includes(name), `metrics lack ${name}`);
  }
  // Drain with a request in flight: readyz goes 503, the request still completes.
  const inFlight = send(edge, 'adm', '/slow');
  await waitFor(() => edge.stats().openExchanges === 1);
  const draining = edge.drain();
  assert.is((await fetch(`${admin}/readyz`)).status, 503);
  assert.is((await inFlight).body.toString(), 'slow');
  await draining;
  await agent.close();
});

test('drain: the agent of a draining edge is told, and new public connections are refused', async (ctx) => {
  const edge = await startEdge({ gracePeriodMs: 5_000 });
  ctx.cleanup.push(() => edge.close());
  const agent = await agentOn(ctx, edge, 'drained');
  const reconnecting = once(agent, 'reconnecting');
  const inFlight = send(edge, 'drained', '/slow');
  await waitFor(() => edge.stats().openExchanges === 1);
  const draining = edge.drain();
  await reconnecting;
  assert.is((await inFlight).body.toString(), 'slow');
  await draining;
  const refused = await new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port: edge.publicPort, headers: { host: 'drained.localhost' } }, (res: IncomingMessage) => resolve(String(res.statusCode)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    req.end();
  });
  assert.is(refused, 'ECONNREFUSED');
});

test.run();
