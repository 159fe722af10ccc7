import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin, waitFor } from '../helpers/harness.js';
import { jetty, stopsAfterEach, type ProcessContext } from '../helpers/process.js';

/** What a newcomer reads when something is wrong: one line that names the fix, and the right exit code. */
const test = suite<ProcessContext & { holder?: Server }>('e2e/messages');
stopsAfterEach(test);

test.after.each(async (ctx) => {
  await new Promise<void>((resolve) => (ctx.holder ? ctx.holder.close(() => resolve()) : resolve()));
  ctx.holder = undefined;
});

const EDGE = ['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', ''];

async function holdPort(ctx: { holder?: Server }): Promise<string> {
  const holder = (ctx.holder = createServer());
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(holder.address() as AddressInfo).port}`;
}

// The gRPC listener's failure was grpc-js's own text ("No address added out of total 1 resolved …"),
// printed twice and naming no flag.
test('a port in use names the flag and the address, for every listener of the edge and the agent, exit 1', async (ctx) => {
  const taken = await holdPort(ctx);
  for (const flag of ['--listen', '--grpc-listen', '--admin-listen']) {
    const run = jetty([...EDGE, flag, taken]);
    assert.is(await run.exited, 1, flag);
    assert.is(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, `cannot listen on ${taken} (${flag}): the port is in use`);
    assert.match(run.stderr, `choose another with ${flag} HOST:PORT`);
    assert.not.match(run.stderr, /No address added/);
  }
  const demo = jetty(['demo-origin', '--port', taken.split(':')[1]]);
  assert.is(await demo.exited, 1);
  assert.is(demo.stderr, `jetty: cannot listen on ${taken} (--port): the port is in use by another process; choose another with --port N\n`);
  ctx.origin = await startOrigin((_req, res) => res.end('ok'));
  const edge = jetty(EDGE);
  ctx.started.push(edge);
  const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'busy', '--admin-listen', taken]);
  ctx.started.push(agent);
  assert.is(await agent.exited, 1);
  assert.match(agent.stderr, `cannot listen on ${taken} (--admin-listen)`);
});

test('a mistyped flag or command: one line with a did-you-mean, no parseArgs boilerplate, exit 2', async () => {
  for (const [args, line] of [
    [['http', '3000', '--nmae', 'demo'], 'jetty: unknown flag --nmae (did you mean --name?)'],
    [['edge', '--lisen', '127.0.0.1:0'], 'jetty: unknown flag --lisen (did you mean --listen?)'],
    [['edge', '--grpc-listn=127.0.0.1:0'], 'jetty: unknown flag --grpc-listn (did you mean --grpc-listen?)'],
    [['token', 'create', '--nam', 'x'], 'jetty: unknown flag --nam (did you mean --name?)'],
    [['edge', '--zzzzzzzz'], 'jetty: unknown flag --zzzzzzzz'],
    [['htp', '3000'], 'jetty: unknown command "htp" (did you mean http?)'],
    [['http', '3000', '--name'], 'jetty: --name needs a value'],
    [['edge', '8080'], 'jetty: unexpected argument "8080"'],
    [['http', '3000', '--name', '-x'], 'jetty: --name needs a value (one that starts with "-" is written --name=VALUE)'],
    [['edge', '--open=yes'], 'jetty: --open takes no value'],
  ] as const) {
    const run = jetty([...args]);
    assert.is(await run.exited, 2, args.join(' '));
    assert.is(run.stderr, `${line}\n`);
  }
});

test('--version prints package.json\'s version (the one place it is written)', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const run = jetty(['--version']);
  assert.is(await run.exited, 0);
  assert.is(run.stdout, `${version}\n`);
});

test('help text: every option of every command starts its description in one column', async () => {
  for (const command of ['edge', 'http']) {
    const run = jetty([command, '--help']);
    assert.is(await run.exited, 0);
    const rows = run.stdout.split('\n').filter((l) => /^ {2}(-|\(config\))/.test(l));
    assert.ok(rows.length > 10, run.stdout);
    const columns = new Set(rows.map((l) => /^ {2}\S+(?: \S+)*? {2,}/.exec(l)?.[0].length));
    assert.equal([...columns], [columns.values().next().value], `${command}: ${[...columns].join(', ')}`);
    assert.not.ok(columns.has(undefined), `${command}: a row with no gap`);
  }
});

test('jetty token create refuses a name pattern the edge would reject, naming the rule, exit 2', async () => {
  for (const bad of ['Bad_Name', 'dev*', 'x-', 'a.b']) {
    const run = jetty(['token', 'create', '--name', bad]);
    assert.is(await run.exited, 2, bad);
    assert.match(run.stderr, `invalid --name "${bad}": want a tunnel name (1-63 lower-case letters`);
    assert.is(run.stdout, '', 'no entry is printed');
  }
  const good = jetty(['token', 'create', '--name', 'dev-*', '--name', 'demo']);
  assert.is(await good.exited, 0);
  assert.match(good.stdout, /names: \["dev-\*", "demo"\]/);
  // The token goes to the agent by environment or config file, never a flag `ps` would show.
  assert.match(good.stdout, /JETTY_TOKEN/);
  assert.not.match(good.stdout, /--token/);
});

// The logger's own `name` ("edge") and the tunnel's were both `"name"` keys on one JSON line.
test('edge JSON log lines carry one "name" key (the logger\'s) and the tunnel as "tunnel"', async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('ok'));
  const edge = jetty(EDGE, { JETTY_LOG_LEVEL: 'info', JETTY_LOG_FORMAT: 'json' });
  ctx.started.push(edge);
  const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'logged']);
  ctx.started.push(agent);
  await agent.line(/^Forwarding /);
  await waitFor(() => edge.stderr.includes('agent registered'), 5000, 'the registration log line');
  const lines = edge.stderr.trim().split('\n');
  for (const line of lines) assert.ok((line.match(/"name":/g) ?? []).length <= 1, line);
  const registered = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'agent registered');
  assert.is(registered?.tunnel, 'logged');
  assert.is(registered?.name, 'edge');
});

test.run();
