import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin } from '../helpers/harness.js';
import { jetty, stopsAfterEach, type ProcessContext } from '../helpers/process.js';
import { httpGet } from '../helpers/raw-http.js';

/** An agent without --name gets a name the edge picks inside its token's scope. */
const test = suite<ProcessContext & { dir: string }>('e2e/token-scope');
stopsAfterEach(test);

test.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-scope-'));
});

test.after.each((ctx) => {
  rmSync(ctx.dir, { recursive: true, force: true });
});

/** `jetty token create` for `names`, through the CLI: the token and its config entry. */
async function createToken(names: string[]): Promise<{ token: string; entry: string }> {
  const run = jetty(['token', 'create', ...names.flatMap((n) => ['--name', n])]);
  assert.is(await run.exited, 0, run.stderr);
  const token = /^ {2}(jt_\S+)$/m.exec(run.stdout)![1];
  return { token, entry: run.stdout.slice(run.stdout.indexOf('tokens:')) };
}

// An agent with a `dev-*` token and no --name drew a random name outside its scope and was refused.
test('a dev-* token and no --name: the agent registers a random dev-… name and serves; an exact-only token gets its name', async (ctx) => {
  ctx.origin = await startOrigin((req, res) => res.end(`scoped ${req.url}`));
  const dev = await createToken(['dev-*']);
  const exact = await createToken(['billing']);
  const config = join(ctx.dir, 'edge.yaml');
  writeFileSync(config, `${dev.entry}${exact.entry.replace('tokens:\n', '')}`);
  const edge = jetty(['edge', '--config', config, '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const seen = new Set<string>();
  for (const transport of ['grpc', 'websocket']) {
    const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--transport', transport], { JETTY_TOKEN: dev.token });
    ctx.started.push(agent);
    const url = (await agent.line(/^Forwarding (\S+) -> /))[1];
    const name = /^http:\/\/(dev-[a-z0-9-]+)\.localhost:\d+$/.exec(url)?.[1];
    assert.ok(name, `${transport}: ${url}`);
    seen.add(name!);
    assert.is((await httpGet(Number(port), `${name}.localhost`, '/hi')).body, 'scoped /hi');
  }
  assert.is(seen.size, 2, 'each agent its own name');
  const billing = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`], { JETTY_TOKEN: exact.token });
  ctx.started.push(billing);
  assert.match((await billing.line(/^Forwarding (\S+) -> /))[1], /^http:\/\/billing\.localhost:/);
});

test('a token that may not claim the name asked for is still refused, exit 1', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('x'));
  const dev = await createToken(['dev-*']);
  const config = join(ctx.dir, 'edge.yaml');
  writeFileSync(config, dev.entry);
  const edge = jetty(['edge', '--config', config, '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'prod-api'], { JETTY_TOKEN: dev.token });
  ctx.started.push(agent);
  assert.is(await agent.exited, 1);
  assert.match(agent.stderr, /may not claim "prod-api"/);
});

test.run();
