import * as assert from 'uvu/assert';
import type { Edge } from '../../src/edge/edge-server.js';
import { send, startEdge } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite<{ edge: Edge }>('edge/router');

test.before(async (ctx) => {
  ctx.edge = await startEdge({ reconnectGraceMs: 0, limits: { tunnelRps: 1 } });
});

test.after(async (ctx) => {
  await ctx.edge.close();
});

// The 404 and 429 pages quoted the tunnel name taken from the Host header: whatever a client put
// there came back in the edge's own page.
test('the pages for an unknown and a rate-limited tunnel do not quote the Host', async (ctx) => {
  const name = '<script>alert(1)</script>';
  const missing = await send(ctx.edge, name, '/');
  assert.is(missing.res.statusCode, 404);
  assert.is(missing.res.headers['x-jetty-error'], 'ERR_TUNNEL_NOT_FOUND');
  assert.not.match(missing.body.toString(), /script|alert/);
  const limited = await send(ctx.edge, name, '/');
  assert.is(limited.res.statusCode, 429);
  assert.not.match(limited.body.toString(), /script|alert/);
});

test.run();
