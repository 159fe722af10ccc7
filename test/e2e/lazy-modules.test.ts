import { fileURLToPath } from 'node:url';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin } from '../helpers/harness.js';
import { httpGet } from '../helpers/raw-http.js';
import { JETTY_BIN, started, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';

// Start-up memory (issue 13): a process loads only what its run uses. An agent that loaded the edge's
// modules, or grpc-js on WebSocket, started ≈ 12 MiB larger; these fail if a static import brings one back.
const test = suite<ProcessContext>('e2e/lazy-modules');
stopsAfterEach(test);

const PRELOAD = fileURLToPath(new URL('../fixtures/loaded-packages.js', import.meta.url));

function jettyWithPreload(ctx: ProcessContext, args: string[]): Running {
  const run = started(process.execPath, ['--import', PRELOAD, JETTY_BIN, ...args], { env: { ...process.env, JETTY_LOG_LEVEL: 'warn' } });
  ctx.started.push(run);
  return run;
}

/** The packages `run` has loaded now (the preload answers SIGUSR2 with one line). */
async function loadedPackages(run: Running): Promise<Set<string>> {
  const seen = run.stdout.length;
  run.child.kill('SIGUSR2');
  const re = /^loaded-packages: (.*)$/m;
  await run.line(re);
  return new Set(re.exec(run.stdout.slice(seen))![1].split(','));
}

async function edge(ctx: ProcessContext, extra: string[] = []): Promise<{ run: Running; port: number }> {
  const run = jettyWithPreload(ctx, ['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', ...extra]);
  const port = Number((await run.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1]);
  return { run, port };
}

/** An agent on `transport` named `lazy`, checked to forward a request (its lazily loaded path works). */
async function agent(ctx: ProcessContext, edgePort: number, transport: string): Promise<Running> {
  ctx.origin ??= await startOrigin((req, res) => res.end(`origin saw ${req.url}`));
  const run = jettyWithPreload(ctx, ['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${edgePort}`, '--transport', transport, '--name', 'lazy']);
  await run.line(/^Forwarding /);
  assert.equal(await httpGet(edgePort, `lazy.localhost:${edgePort}`, '/x'), { status: 200, body: 'origin saw /x' });
  return run;
}

const absent = (loaded: Set<string>, names: string[]): void => {
  for (const n of names) assert.not.ok(loaded.has(n), `${n} loaded: ${[...loaded].join(',')}`);
};

test('an edge without --registry redis and without an admin listener loads neither ioredis nor prom-client', async (ctx) => {
  const { run } = await edge(ctx);
  const loaded = await loadedPackages(run);
  assert.ok(loaded.has('@grpc/grpc-js') && loaded.has('ws'), 'the transports it serves are loaded');
  absent(loaded, ['ioredis', 'prom-client']);
});

test('an edge with an admin listener loads prom-client and serves its metrics', async (ctx) => {
  const { run } = await edge(ctx, ['--admin-listen', '127.0.0.1:0']);
  const admin = Number((await run.line(/^Admin on http:\/\/127\.0\.0\.1:(\d+) /))[1]);
  assert.ok((await loadedPackages(run)).has('prom-client'));
  assert.match(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text(), /^jetty_open_exchanges 0$/m);
});

test('an agent on WebSocket loads ws and none of grpc-js, ioredis, prom-client', async (ctx) => {
  const { port } = await edge(ctx);
  const loaded = await loadedPackages(await agent(ctx, port, 'websocket'));
  assert.ok(loaded.has('ws'));
  absent(loaded, ['@grpc/grpc-js', 'ioredis', 'prom-client']);
});

test('an agent on gRPC loads grpc-js and none of ws, ioredis, prom-client', async (ctx) => {
  const { port } = await edge(ctx);
  const loaded = await loadedPackages(await agent(ctx, port, 'grpc'));
  assert.ok(loaded.has('@grpc/grpc-js'));
  absent(loaded, ['ws', 'ioredis', 'prom-client']);
});

test.run();
