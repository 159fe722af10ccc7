import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { RawHttpClient, rawGet } from '../helpers/raw-http.js';
import { startAgent, startEdge, startOrigin, type Origin } from '../helpers/harness.js';

interface Ctx {
  edge: Edge;
  origin: Origin;
  agent: Agent;
  clients: RawHttpClient[];
}

const NAME = 'demo';
const KEEP_ALIVE_MS = 300;

const test = suite<Ctx>('e2e/public-listener');

test.before(async (ctx) => {
  ctx.origin = await startOrigin((req, res) => {
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ headers: req.headers, trailers: req.trailers })));
  });
  ctx.edge = await startEdge({ limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS } });
  ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME);
});

test.before.each((ctx) => {
  ctx.clients = [];
});

test.after.each((ctx) => {
  for (const c of ctx.clients) c.close();
});

test.after(async (ctx) => {
  await ctx.agent.close();
  await ctx.edge.close();
  await ctx.origin.close();
});

async function client(ctx: Ctx, localAddress?: string): Promise<RawHttpClient> {
  const c = await RawHttpClient.connect(ctx.edge.publicPort, localAddress);
  ctx.clients.push(c);
  return c;
}

/** Number of complete responses (status lines) received so far. */
const responses = (text: string): number => text.split('HTTP/1.1 ').length - 1;

test('a keep-alive connection times out again after a tunnelled response', async (ctx) => {
  // Guards against the router disarming the socket timer after relaying: idle connections then stayed open for ever.
  const c = await client(ctx);
  c.write(rawGet(`${NAME}.localhost`));
  await c.until((t) => responses(t) === 1 && t.endsWith('}'), 'the first response');
  // Still usable: the timer closes only idle connections.
  c.write(rawGet(`${NAME}.localhost`));
  await c.until((t) => responses(t) === 2 && t.endsWith('}'), 'the second response on the same connection');
  const idleFrom = Date.now();
  await c.closedByPeer('the keep-alive timeout to close the connection', KEEP_ALIVE_MS + 4000);
  assert.ok(Date.now() - idleFrom >= KEEP_ALIVE_MS - 50, 'closed before the keep-alive timeout');
});

test.run();
