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
  // Markup is not a host name at all (400, unquoted); a well-formed unknown name is 404, unquoted.
  const markup = await send(ctx.edge, '<script>alert(1)</script>', '/');
  assert.is(markup.res.statusCode, 400);
  assert.not.match(markup.body.toString(), /script|alert/);
  const name = 'quoted-name-probe';
  const missing = await send(ctx.edge, name, '/');
  assert.is(missing.res.statusCode, 404);
  assert.is(missing.res.headers['x-jetty-error'], 'ERR_TUNNEL_NOT_FOUND');
  assert.not.match(missing.body.toString(), /quoted-name-probe/);
  const limited = await send(ctx.edge, name, '/');
  assert.is(limited.res.statusCode, 429);
  assert.not.match(limited.body.toString(), /quoted-name-probe/);
});

test.run();
