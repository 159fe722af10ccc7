import { freePort } from '../helpers/free-port.js';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin } from '../helpers/harness.js';
import { jetty, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';
import { httpGet } from '../helpers/raw-http.js';
import { makeTestPki } from '../helpers/tls-certs.js';

const test = suite<ProcessContext>('e2e/cli');
// Only processes each test started are stopped, by their handles (PIDs).
stopsAfterEach(test);

const get = httpGet;

async function startEdgeProcess(ctx: { started: Running[] }): Promise<number> {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  const m = await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /);
  return Number(m[1]);
}

test('an unknown flag exits 2 with one line naming it', async () => {
  const run = jetty(['edge', '--bogus']);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /--bogus/);
  assert.is(run.stderr.trim().split('\n').length, 1);
});

test('bad values exit 2 naming the problem', async () => {
  for (const [args, re] of [
    [['http', '3000', '--transport', 'pigeon'], /--transport/],
    [['http', 'not a target'], /target/],
    [['http', '3000', '--name', 'Bad_Name'], /--name/],
    [['edge', '--listen', 'nowhere'], /nowhere/],
    [['launch'], /unknown command/],
    [['edge', '--transports', 'grpc,carrier'], /--transports/],
    [['http', '3000', '--ws-codec', 'xml'], /--ws-codec/],
    [['edge', '--tls-cert', 'edge.pem'], /--tls-cert and --tls-key/],
    [['edge', '--tls-cert', '/nonexistent/edge.pem', '--tls-key', '/nonexistent/edge.key'], /cannot read --tls-cert/],
    // A token never crosses the network in cleartext unless asked to (loopback is the one exception).
    [['http', '3000', '--edge', 'http://192.0.2.10:8080', '--token', 'jt_secret'], /cleartext .*--insecure/],
    [['http', '3000', '--edge', 'http://tunnels.example.com', '--token', 'jt_secret'], /cleartext .*--insecure/],
  ] as const) {
    const run = jetty([...args]);
    assert.is(await run.exited, 2, args.join(' '));
    assert.match(run.stderr, re);
  }
});

test('TLS: the edge serves https with --tls-cert/--tls-key; an agent with --edge-ca forwards, one without exits 1, a plain http:// one exits 2', async (ctx) => {
  const pki = makeTestPki();
  try {
    ctx.origin = await startOrigin((req, res) => res.end(`tls ${req.url}`));
    const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--tls-cert', pki.certPath, '--tls-key', pki.keyPath]);
    ctx.started.push(edge);
    const port = Number((await edge.line(/^Jetty edge on https:\/\/localhost:(\d+) /))[1]);
    const agent = jetty(['http', String(ctx.origin.port), '--edge', `https://127.0.0.1:${port}`, '--edge-ca', pki.caPath, '--name', 'secure']);
    ctx.started.push(agent);
    assert.is((await agent.line(/^Forwarding (\S+) -> /))[1], `https://secure.localhost:${port}`);
    const noCa = jetty(['http', String(ctx.origin.port), '--edge', `https://127.0.0.1:${port}`, '--name', 'no-ca']);
    ctx.started.push(noCa);
    assert.is(await noCa.exited, 1);
    assert.match(noCa.stderr, /cannot verify the TLS certificate.*--edge-ca/);
    const plain = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'plain']);
    ctx.started.push(plain);
    assert.is(await plain.exited, 2);
    assert.match(plain.stderr, /only speaks HTTPS: use --edge https:/);
  } finally {
    pki.remove();
  }
});

test('--help on each command exits 0 with usage', async () => {
  for (const args of [['--help'], ['edge', '--help'], ['http', '--help']]) {
    const run = jetty(args);
    assert.is(await run.exited, 0);
    assert.match(run.stdout, /Usage: jetty/);
  }
});

test('edge + agent processes: Forwarding line, traffic, refusal of a live name, random names', async (ctx) => {
  ctx.origin = await startOrigin((req, res) => res.end(`origin saw ${req.url}`));
  const port = await startEdgeProcess(ctx);
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'cli']);
  ctx.started.push(agent);
  const fwd = await agent.line(/^Forwarding (\S+) -> (\S+)$/);
  assert.is(fwd[1], `http://cli.localhost:${port}`);
  assert.is(fwd[2], `http://localhost:${ctx.origin.port}`);
  assert.equal(await get(port, `cli.localhost:${port}`, '/x'), { status: 200, body: 'origin saw /x' });

  const second = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'cli']);
  ctx.started.push(second);
  assert.is(await second.exited, 1);
  assert.match(second.stderr, /in use/);

  const anon = jetty(['http', String(ctx.origin.port)], { JETTY_EDGE: `http://127.0.0.1:${port}` });
  ctx.started.push(anon);
  const named = await anon.line(/^Forwarding http:\/\/([a-z]+-[a-z]+-\d{4})\.localhost:\d+ -> /);
  assert.equal(await get(port, `${named[1]}.localhost`), { status: 200, body: 'origin saw /' });
});

test('restarting the edge under a running agent: the agent reconnects, reclaims its name and serves again', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('back'));
  const [port, grpcPort] = [await freePort(), await freePort()];
  const edgeArgs = ['edge', '--listen', `127.0.0.1:${port}`, '--grpc-listen', `127.0.0.1:${grpcPort}`, '--admin-listen', ''];
  const first = jetty(edgeArgs);
  ctx.started.push(first);
  await first.line(/^Jetty edge on /);
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'phoenix']);
  ctx.started.push(agent);
  await agent.line(/^Forwarding /);
  await first.kill();
  await agent.line(/^Reconnecting in /);
  const second = jetty(edgeArgs);
  ctx.started.push(second);
  await second.line(/^Jetty edge on /);
  await agent.line(/^Reconnected over grpc: Forwarding http:\/\/phoenix\.localhost/, 40_000);
  assert.equal(await get(port, 'phoenix.localhost'), { status: 200, body: 'back' });
  assert.is(agent.child.exitCode, null, 'the agent kept running');
});

test('the agent exposes /readyz: 200 while connected, 503 while it reconnects', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end());
  const [port, grpcPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const edge = jetty(['edge', '--listen', `127.0.0.1:${port}`, '--grpc-listen', `127.0.0.1:${grpcPort}`, '--admin-listen', '']);
  ctx.started.push(edge);
  await edge.line(/^Jetty edge on /);
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`]);
  ctx.started.push(agent);
  await agent.line(/^Forwarding /);
  const ready = await get(adminPort, `127.0.0.1:${adminPort}`, '/readyz');
  assert.is(ready.status, 200);
  assert.is(JSON.parse(ready.body).transport, 'grpc');
  await edge.kill();
  await agent.line(/^Reconnecting in /);
  assert.is((await get(adminPort, `127.0.0.1:${adminPort}`, '/readyz')).status, 503);
});

test('an agent with no edge at all exits 1 with the reason', async () => {
  const lonely = jetty(['http', '1234', '--edge', `http://127.0.0.1:${await freePort()}`]);
  assert.is(await lonely.exited, 1);
  assert.match(lonely.stderr, /cannot reach the edge/);
});

test('forcing a transport the edge does not offer exits 1 with the reason; the line before Forwarding names the transport', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('ws'));
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--transports', 'websocket']);
  ctx.started.push(edge);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) \(agents: websocket\)/))[1]);
  const forced = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--transport', 'grpc']);
  ctx.started.push(forced);
  assert.is(await forced.exited, 1);
  assert.match(forced.stderr, /does not offer grpc/);
  const auto = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'wsauto']);
  ctx.started.push(auto);
  await auto.line(/^Forwarding /);
  assert.match(auto.stdout, /over websocket\/jetty\.v1\.proto\nForwarding /);
  assert.equal(await get(port, 'wsauto.localhost'), { status: 200, body: 'ws' });
});

test.run();
