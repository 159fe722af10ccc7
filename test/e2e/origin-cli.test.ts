import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import * as assert from 'uvu/assert';
import type { Edge } from '../../src/edge/edge-server.js';
import { send } from '../helpers/harness.js';
import { startHttpsOrigin } from '../helpers/h2-origin-server.js';
import { jetty, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';
import { makeTestPki } from '../helpers/tls-certs.js';

const test = suite<{ started: Running[] }>('e2e/origin-cli');

test.before.each((ctx) => {
  ctx.started = [];
});

test.after.each(async (ctx) => {
  // Only processes this test started, by their handles (PIDs).
  await Promise.all(ctx.started.map((r) => r.kill()));
});

test('origin targets and --host-header values that cannot work exit 2 naming the problem (flag, env, config file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jetty-origin-cli-'));
  try {
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, 'host-header: "two words"\n');
    for (const [args, env, re] of [
      [['http', 'ftp://localhost:21'], {}, /scheme "ftp:"/],
      [['http', 'http://localhost:3000/base?q=1'], {}, /no query/],
      [['http', 'http://user:pw@localhost:3000'], {}, /credentials/],
      [['http', 'h2c://localhost:50051/svc'], {}, /takes no path/],
      [['http', '3000', '--host-header', 'a b'], {}, /--host-header/],
      [['http', '3000', '--host-header', 'api.internal:99999'], {}, /--host-header/],
      [['http', '3000'], { JETTY_HOST_HEADER: 'x/y' }, /JETTY_HOST_HEADER/],
      [['http', '3000', '--config', config], {}, /"host-header" in/],
    ] as const) {
      const run = jetty([...args], env);
      assert.is(await run.exited, 2, args.join(' '));
      assert.match(run.stderr, re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jetty http https://… --origin-insecure warns once, shows the origin and its base path, and serves through an edge process', async (ctx) => {
  const pki = makeTestPki();
  const origin = await startHttpsOrigin(pki.cert, pki.key, (req, res) => res.end(`${req.url} sni=${(req.socket as TLSSocket).servername}`));
  try {
    const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
    ctx.started.push(edge);
    const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1]);
    const target = `https://localhost:${origin.port}/api`;
    const agent = jetty(['http', target, '--edge', `http://127.0.0.1:${port}`, '--name', 'secure', '--origin-insecure', '--host-header', 'rewrite']);
    ctx.started.push(agent);
    await agent.line(new RegExp(`^Forwarding http://secure\\.localhost:${port} -> ${target.replace(/[.]/g, '\\.')}$`));
    const warnings = agent.stderr.split('\n').filter((l) => /warning/.test(l));
    assert.is(warnings.length, 1, agent.stderr);
    assert.match(warnings[0], /--origin-insecure/);
    // send() reads only the edge's public port: the edge here is a process.
    const { res, body } = await send({ publicPort: port } as Edge, 'secure', '/v1?x=1');
    assert.is(res.statusCode, 200);
    assert.is(body.toString(), '/api/v1?x=1 sni=localhost');
  } finally {
    await origin.close();
    pki.remove();
  }
});

test.run();
