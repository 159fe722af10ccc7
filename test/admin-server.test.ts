import { readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { AdminServer } from '../src/admin-server.js';
import { VERSION } from '../src/version.js';
import { suite } from './helpers/suite.js';

const test = suite('admin-server');

test('/livez, /readyz (200 or 503 with its JSON) and /metrics only when given', async () => {
  let ready = true;
  const plain = await AdminServer.start({ listen: '127.0.0.1:0', readiness: () => ({ ready, body: { status: ready ? 'up' : 'down' } }) });
  const withMetrics = await AdminServer.start({
    listen: '127.0.0.1:0',
    readiness: () => ({ ready: true, body: {} }),
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4', text: 'jetty_x 1\n' }),
  });
  try {
    const base = `http://127.0.0.1:${plain.port}`;
    assert.is((await fetch(`${base}/livez`)).status, 200);
    const up = await fetch(`${base}/readyz?verbose=1`);
    assert.is(up.status, 200);
    assert.equal(await up.json(), { status: 'up' });
    ready = false;
    const down = await fetch(`${base}/readyz`);
    assert.is(down.status, 503);
    assert.equal(await down.json(), { status: 'down' });
    assert.is((await fetch(`${base}/metrics`)).status, 404);
    const metrics = await fetch(`http://127.0.0.1:${withMetrics.port}/metrics`);
    assert.is(metrics.status, 200);
    assert.is(await metrics.text(), 'jetty_x 1\n');
  } finally {
    await plain.close();
    await withMetrics.close();
  }
});

test('start() rejects for a port in use and with the reason of an aborted signal', async () => {
  const first = await AdminServer.start({ listen: '127.0.0.1:0', readiness: () => ({ ready: true, body: {} }) });
  try {
    try {
      await AdminServer.start({ listen: `127.0.0.1:${first.port}`, readiness: () => ({ ready: true, body: {} }) });
      assert.unreachable();
    } catch (err) {
      assert.is((err as { code?: string }).code, 'EADDRINUSE');
    }
    const reason = new Error('stop');
    try {
      await AdminServer.start({ listen: '127.0.0.1:0', readiness: () => ({ ready: true, body: {} }) }, { signal: AbortSignal.abort(reason) });
      assert.unreachable();
    } catch (err) {
      assert.is(err, reason);
    }
  } finally {
    await first.close();
  }
});

test('VERSION is package.json\'s', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.is(VERSION, pkg.version);
});

test.run();
