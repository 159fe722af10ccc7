import { once } from 'node:events';
import { WebSocket, type ClientOptions } from 'ws';
import * as assert from 'uvu/assert';
import { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { silentLogger } from '../../src/logger.js';
import { startEdge, waitFor, within } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';
import { UpgradeOrigin } from '../helpers/upgrade-suite.js';

interface Ctx {
  pki: TestPki;
  origin: UpgradeOrigin;
  edge: Edge;
  agent: Agent;
}

const test = suite<Ctx>('e2e/upgrade-tls');

test.before(async (ctx) => {
  ctx.pki = makeTestPki();
  ctx.origin = await UpgradeOrigin.start();
  ctx.edge = await startEdge({ tls: { cert: ctx.pki.cert, key: ctx.pki.key } });
  ctx.agent = await Agent.start({ edge: new URL(`https://127.0.0.1:${ctx.edge.publicPort}`), edgeCa: ctx.pki.ca, origin: ctx.origin.url, name: 'secure', logger: silentLogger() });
});

test.after(async (ctx) => {
  await ctx.agent.close();
  await ctx.edge.close();
  await ctx.origin.close();
  ctx.pki.remove();
});

test('wss:// through the HTTPS public listener: messages echo, and an origin reset drops the client (a TLS socket cannot RST)', async (ctx) => {
  // The test certificate names localhost; the client dials 127.0.0.1 (ws passes servername on to tls.connect).
  const options = { headers: { host: 'secure.localhost' }, ca: ctx.pki.ca, servername: 'localhost' } as ClientOptions;
  const ws = new WebSocket(`wss://127.0.0.1:${ctx.edge.publicPort}/echo`, options);
  ws.on('error', () => undefined);
  await within(once(ws, 'open'), 10_000, 'the wss connection to open');
  ws.send('over tls');
  const [data] = (await within(once(ws, 'message'), 10_000, 'the echo')) as [Buffer];
  assert.is(data.toString(), 'over tls');
  const closed = within(once(ws, 'close'), 10_000, 'the drop');
  ctx.origin.last!.terminate();
  assert.is(((await closed) as [number])[0], 1006);
  await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'the exchange to end');
});

test.run();
