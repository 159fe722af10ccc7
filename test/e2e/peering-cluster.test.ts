import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import * as assert from 'uvu/assert';
import { freePorts } from '../helpers/free-port.js';
import { patternBytes, readBody, sha256, startOrigin } from '../helpers/harness.js';
import { hasTool, jetty, JETTY_BIN, started, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

/**
 * Edge-to-edge forwarding between real processes: redis-server (the shared registry), two `jetty edge`
 * processes on 127.0.0.11 and 127.0.0.12 with peer listeners, and a `jetty http` agent on the first.
 * Requests to the second reach the tunnel through the peer link.
 */
const test = suite<ProcessContext>('e2e/peering-cluster');
stopsAfterEach(test);

const NAME = 'demo';
const SECRET = 'peering-cluster-test-secret';
const MiB = 1024 * 1024;

/** The shared Redis registry (`--registry`) is built by issue 14's part 1; without it there is no cluster to test. */
function hasRegistryFlag(): boolean {
  const help = execFileSync(process.execPath, [JETTY_BIN, 'edge', '--help'], { encoding: 'utf8' });
  if (help.includes('--registry')) return true;
  process.stdout.write('e2e/peering-cluster: skipped, this build has no --registry (the shared registry of issue 14 part 1)\n');
  return false;
}

const READY = hasTool('redis-server', ['--version'], 'e2e/peering-cluster') && hasRegistryFlag();
const it = READY ? test : test.skip;

async function cluster(ctx: ProcessContext): Promise<{ a: Running; b: Running; publicPort: number }> {
  const [redisPort, publicPort, grpcPort, peerPort] = await freePorts(4);
  const redis = started('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  ctx.started.push(redis);
  await redis.line(/Ready to accept connections/, 10_000);
  const edge = (host: string, id: string): Running => {
    const run = jetty([
      'edge',
      '--listen', `${host}:${publicPort}`,
      '--grpc-listen', `${host}:${grpcPort}`,
      '--admin-listen', '',
      '--registry', `redis://127.0.0.1:${redisPort}/0`,
      '--edge-id', id,
      '--peer-listen', `${host}:${peerPort}`,
    ], { JETTY_PEER_SECRET: SECRET });
    ctx.started.push(run);
    return run;
  };
  const a = edge('127.0.0.11', 'edge-a');
  const b = edge('127.0.0.12', 'edge-b');
  await Promise.all([a.line(/^Jetty edge on /), b.line(/^Jetty edge on /)]);
  // Each says where its peers reach it (the URL it stores in the registry).
  await a.line(new RegExp(`^Peer listener on http://127\\.0\\.0\\.11:${peerPort} `));
  return { a, b, publicPort };
}

/** GET `path` of the tunnel from the edge at `host` (fetch() cannot set Host). */
function fetchFrom(host: string, port: number, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, headers: { host: `${NAME}.localhost:${port}` }, agent: false }, (res) => {
      readBody(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

it('a request to the edge without the tunnel is forwarded to the edge holding it (8 MiB by SHA-256)', async (ctx) => {
  const body = patternBytes(8 * MiB, 5);
  ctx.origin = await startOrigin((_req, res) => res.end(body));
  const { publicPort } = await cluster(ctx);
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.11:${publicPort}`, '--name', NAME]);
  ctx.started.push(agent);
  await agent.line(/^Forwarding /, 10_000);
  const direct = await fetchFrom('127.0.0.11', publicPort, '/');
  assert.is(direct.status, 200);
  const forwarded = await fetchFrom('127.0.0.12', publicPort, '/');
  assert.is(forwarded.status, 200);
  assert.is(sha256(forwarded.body), sha256(body));
});

test.run();
