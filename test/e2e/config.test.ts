import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { startOrigin, waitFor, type Origin } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';

const test = suite<{ dir: string; started: Running[]; origin?: Origin }>('e2e/config');

test.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-config-'));
  ctx.started = [];
});

test.after.each(async (ctx) => {
  await Promise.all(ctx.started.map((r) => r.kill()));
  await ctx.origin?.close();
  ctx.origin = undefined;
  rmSync(ctx.dir, { recursive: true, force: true });
});

function file(ctx: { dir: string }, text: string): string {
  const path = join(ctx.dir, 'edge.yaml');
  writeFileSync(path, text);
  return path;
}

test('--check-config prints the effective configuration with flag > env > file > default, each token by its whole hash and its names', async (ctx) => {
  const path = file(ctx, 'domain: from-file.test\nlisten: 127.0.0.1:7000\ntunnel-rps: 50\ntokens:\n  - hash: sha256:' + 'a'.repeat(64) + '\n    names: [dev-*]\n');
  const run = jetty(['edge', '--config', path, '--check-config', '--listen', '127.0.0.1:7001'], { JETTY_TUNNEL_RPS: '75' });
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^listen: 127\.0\.0\.1:7001$/m); // flag beats file
  assert.match(run.stdout, /^tunnel-rps: 75$/m); // env beats file
  assert.match(run.stdout, /^domain: from-file\.test$/m); // file beats default
  assert.match(run.stdout, /^max-header-count: 100$/m); // default
  // Hashes are not secrets: shown whole (masked, two entries were indistinguishable), with their names.
  assert.match(run.stdout, new RegExp(`- hash: sha256:${'a'.repeat(64)}\\n\\s+names:\\n\\s+- dev-\\*`));
});

test('--check-config says which TCP and UDP ports the edge offers, and that an empty range is off', async (ctx) => {
  let run = jetty(['edge', '--check-config', '--tcp-ports', '20000-20099,20200', '--udp-ports', '']);
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^# TCP tunnels on ports 20000-20099,20200 \(101 ports\) \(OPEN: any agent may take one\)$/m);
  assert.match(run.stdout, /^# UDP tunnels off \(udp-ports empty\)$/m);
  // With tokens the ports are not open to anyone, and the line does not say so.
  const path = file(ctx, `udp-ports: "5353"\ntokens:\n  - hash: sha256:${'b'.repeat(64)}\n    ports: ["5353"]\n`);
  run = jetty(['edge', '--config', path, '--check-config']);
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^# UDP tunnels on ports 5353 \(1 port\)$/m);
  assert.match(run.stdout, /^# TCP tunnels off \(tcp-ports empty\)$/m);
});

test('an unknown key or a bad value exits 2 naming the key and the file', async (ctx) => {
  const unknown = file(ctx, 'listen: 127.0.0.1:7000\nlisen: typo\n');
  let run = jetty(['edge', '--config', unknown, '--check-config']);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, new RegExp(`unknown key "lisen" in ${unknown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const bad = file(ctx, 'tunnel-rps: lots\n');
  run = jetty(['edge', '--config', bad, '--check-config']);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /"tunnel-rps" in .*edge\.yaml/);
  run = jetty(['edge', '--config', join(ctx.dir, 'missing.yaml')]);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /cannot read config file/);
  run = jetty(['edge', '--check-config'], { JETTY_IDLE_TIMEOUT: '-5' });
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /JETTY_IDLE_TIMEOUT/);
});

test('upgrade-idle-timeout: default one hour; flag, env and file set it; a bad value exits 2 naming it', async (ctx) => {
  let run = jetty(['edge', '--check-config']);
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^upgrade-idle-timeout: 3600000$/m);
  run = jetty(['edge', '--config', file(ctx, 'upgrade-idle-timeout: 120000\n'), '--check-config'], { JETTY_UPGRADE_IDLE_TIMEOUT: '90000' });
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^upgrade-idle-timeout: 90000$/m);
  run = jetty(['edge', '--check-config', '--upgrade-idle-timeout', '5000']);
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^upgrade-idle-timeout: 5000$/m);
  run = jetty(['edge', '--check-config', '--upgrade-idle-timeout', 'soon']);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /upgrade-idle-timeout/);
});

test('without tokens the listeners default to loopback and the edge says it is open; with tokens they default to all interfaces', async (ctx) => {
  let run = jetty(['edge', '--check-config']);
  assert.is(await run.exited, 0, run.stderr);
  assert.match(run.stdout, /^# OPEN: no agent tokens/);
  assert.match(run.stdout, /^listen: 127\.0\.0\.1:8080$/m);
  assert.match(run.stdout, /^grpc-listen: 127\.0\.0\.1:8091$/m);
  const tokens = file(ctx, `tokens:\n  - hash: sha256:${'b'.repeat(64)}\n    names: ["*"]\n`);
  run = jetty(['edge', '--config', tokens, '--check-config']);
  assert.is(await run.exited, 0, run.stderr);
  assert.not.match(run.stdout, /OPEN/);
  assert.match(run.stdout, /^listen: 0\.0\.0\.0:8080$/m);
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  await edge.line(/^Jetty edge on http:\/\/localhost:\d+ \(agents: [^)]*\) OPEN: no agent tokens/);
});

test('an open edge on a non-loopback address needs --open, else exits 2 with the reason', async (ctx) => {
  for (const args of [['--listen', '0.0.0.0:0'], ['--grpc-listen', '[::]:0'], ['--listen', '192.0.2.1:0']]) {
    const run = jetty(['edge', '--admin-listen', '', ...args]);
    assert.is(await run.exited, 2, args.join(' '));
    assert.match(run.stderr, /no agent tokens.*--open/, args.join(' '));
  }
  // gRPC switched off: its listener does not count.
  const wsOnly = jetty(['edge', '--grpc-listen', '0.0.0.0:8091', '--transports', 'websocket', '--check-config']);
  assert.is(await wsOnly.exited, 0, wsOnly.stderr);
  const edge = jetty(['edge', '--open', '--listen', '0.0.0.0:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  await edge.line(/^Jetty edge on .* OPEN: no agent tokens/);
});

test('max-header-bytes above what one frame carries exits 2', async () => {
  const run = jetty(['edge', '--check-config', '--max-header-bytes', String(1024 * 1024)]);
  assert.is(await run.exited, 2);
  assert.match(run.stderr, /--max-header-bytes.*frame/);
});

test('jetty token create prints a token and the config entry; the edge then requires it', async (ctx) => {
  const created = jetty(['token', 'create', '--name', 'secure']);
  assert.is(await created.exited, 0);
  const token = /^ {2}(jt_\S+)$/m.exec(created.stdout)?.[1];
  const entry = created.stdout.slice(created.stdout.indexOf('tokens:'));
  assert.ok(token && entry.includes('sha256:'));
  assert.not.ok(entry.includes(token!), 'the config entry holds only the hash');
  ctx.origin = await startOrigin((_req, res) => res.end('secret'));
  const edge = jetty(['edge', '--config', file(ctx, entry), '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const without = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'secure']);
  ctx.started.push(without);
  assert.is(await without.exited, 1, 'no retry loop on a refused token');
  assert.match(without.stderr, /requires a token/);
  const withToken = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'secure'], { JETTY_TOKEN: token! });
  ctx.started.push(withToken);
  await withToken.line(/^Forwarding /);
});

test('SIGTERM on edge and agent lets a streaming request finish, then both exit 0', async (ctx) => {
  let release!: () => void;
  let released!: Promise<void>;
  ctx.origin = await startOrigin(async (_req, res) => {
    res.write('first ');
    await released;
    res.end('last');
  });
  for (const target of ['agent', 'edge'] as const) {
    released = new Promise<void>((r) => (release = r));
    const info = { JETTY_LOG_LEVEL: 'info', JETTY_LOG_FORMAT: 'json' };
    const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--grace-period', '10000'], info);
    ctx.started.push(edge);
    const port = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
    const agent = jetty(['http', String(ctx.origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', `term-${target}`], info);
    ctx.started.push(agent);
    await agent.line(/^Forwarding /);
    const body = new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: Number(port), headers: { host: `term-${target}.localhost` } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          if (text === 'first ') (target === 'agent' ? agent : edge).child.kill('SIGTERM');
        });
        res.on('end', () => resolve(res.complete ? text : `${text} (cut)`));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    // The signalled process says it is draining / leaving while the response is still open.
    const signalled = target === 'agent' ? agent : edge;
    await waitFor(() => /"msg":"(draining|leaving)"/.test(signalled.stderr), 5000, `${target} to start draining`);
    release();
    assert.is(await body, 'first last', `${target} drained the request`);
    assert.is(await (target === 'agent' ? agent : edge).exited, 0, `${target} exit code`);
  }
});

test.run();
