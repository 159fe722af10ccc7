import { once } from 'node:events';
import * as assert from 'uvu/assert';
import type { Edge } from '../../src/edge/edge-server.js';
import { startEdge, waitFor, within } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';
import { UpgradeOrigin, wsClient } from '../helpers/upgrade-suite.js';

interface Ctx {
  edge: Edge;
  origin: UpgradeOrigin;
  agent?: Running;
}

const test = suite<Ctx>('e2e/upgrade-agent-killed');

test.before.each(async (ctx) => {
  ctx.origin = await UpgradeOrigin.start();
  ctx.edge = await startEdge();
});

test.after.each(async (ctx) => {
  await ctx.agent?.kill();
  ctx.agent = undefined;
  await ctx.edge.close();
  await ctx.origin.close();
});

for (const transport of ['grpc', 'websocket']) {
  test(`an agent (${transport}) killed mid-stream: the WebSocket client sees its connection drop, the edge releases the exchange`, async (ctx) => {
    ctx.agent = jetty(['http', String(ctx.origin.url.port), '--edge', `http://127.0.0.1:${ctx.edge.publicPort}`, '--name', 'live', '--transport', transport]);
    await ctx.agent.line(/^Forwarding /);
    const ws = wsClient(ctx.edge, '/echo');
    await within(once(ws, 'open'), 10_000, 'the WebSocket to open');
    ws.send('before');
    const [first] = (await within(once(ws, 'message'), 10_000, 'the echo')) as [Buffer];
    assert.is(first.toString(), 'before');
    const dropped = within(once(ws, 'close'), 10_000, 'the client to see the drop');
    // SIGKILL: no drain, no goodbye; the edge learns it from the transport.
    ctx.agent.child.kill('SIGKILL');
    const [code] = (await dropped) as [number];
    assert.is(code, 1006);
    await waitFor(() => ctx.edge.stats().openExchanges === 0, 10_000, 'the exchange to be released');
  });
}

test.run();
