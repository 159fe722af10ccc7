import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { jetty, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

const test = suite<{ dir: string; started: Running[] }>('e2e/peer-config');

test.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-peer-config-'));
  ctx.started = [];
});

test.after.each(async (ctx) => {
  await Promise.all(ctx.started.map((r) => r.kill()));
  rmSync(ctx.dir, { recursive: true, force: true });
});

function run(ctx: { started: Running[] }, args: string[], env: Record<string, string> = {}): Running {
  const r = jetty(['edge', ...args, '--check-config'], env);
  ctx.started.push(r);
  return r;
}

const SECRET = 'a-cluster-secret-of-32-bytes-xyz';

test('--peer-listen without a peer secret, or with one under 16 bytes, exits 2 naming the problem', async (ctx) => {
  const missing = run(ctx, ['--peer-listen', '127.0.0.1:9444']);
  assert.is(await missing.exited, 2);
  assert.match(missing.stderr, /--peer-listen needs --peer-secret/);
  const short = run(ctx, ['--peer-listen', '127.0.0.1:9444'], { JETTY_PEER_SECRET: 'short' });
  assert.is(await short.exited, 2);
  assert.match(short.stderr, /--peer-secret is too short: at least 16 bytes/);
  const wildcard = run(ctx, ['--peer-listen', '0.0.0.0:9444'], { JETTY_PEER_SECRET: SECRET });
  assert.is(await wildcard.exited, 2);
  assert.match(wildcard.stderr, /wildcard address: give --peer-url/);
});

test('--check-config shows the peer URL to advertise (derived, or given) with the secret masked; the secret may come from a file', async (ctx) => {
  const derived = run(ctx, ['--peer-listen', '127.0.0.1:9444'], { JETTY_PEER_SECRET: SECRET });
  assert.is(await derived.exited, 0, derived.stderr);
  assert.match(derived.stdout, /^peer-url: http:\/\/127\.0\.0\.1:9444$/m);
  assert.match(derived.stdout, /^peer-secret: a-cl…$/m);
  assert.not.match(derived.stdout, new RegExp(SECRET));
  const path = join(ctx.dir, 'peer.secret');
  writeFileSync(path, `${SECRET}\n`);
  const fromFile = run(ctx, ['--peer-listen', '127.0.0.1:9444', '--peer-secret-file', path, '--peer-url', 'https://edge-1.internal:9444']);
  assert.is(await fromFile.exited, 0, fromFile.stderr);
  assert.match(fromFile.stdout, /^peer-url: https:\/\/edge-1\.internal:9444$/m);
  const both = run(ctx, ['--peer-listen', '127.0.0.1:9444', '--peer-secret-file', path], { JETTY_PEER_SECRET: SECRET });
  assert.is(await both.exited, 2);
  assert.match(both.stderr, /give one or the other/);
});

test('an edge with --peer-listen but no shared registry exits 2: no other edge would find it', async (ctx) => {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--peer-listen', '127.0.0.1:0'], { JETTY_PEER_SECRET: SECRET });
  ctx.started.push(edge);
  assert.is(await edge.exited, 2);
  assert.match(edge.stderr, /--peer-listen needs a shared registry/);
});

test.run();
