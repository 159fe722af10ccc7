import type { Test } from 'uvu';
import { suite } from './suite.js';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from './harness.js';
import type { RawWsAgent } from './raw-ws-agent.js';

export interface HostileCtx {
  edge: Edge;
  origin: Origin;
  /** A real WebSocket agent for the tunnel `good`, there from start to end. */
  good: Agent;
  /** The test's hand-driven agent, closed after each test. */
  raw?: RawWsAgent;
}

/**
 * A suite around one live edge serving a healthy WebSocket tunnel `good`, for tests that send an edge
 * what no real agent would. After each test, whatever its agent did: that agent's socket is gone, the
 * edge still serves `good`, and only `good`'s session and socket are left (nothing leaked).
 */
export function hostileEdgeSuite(name: string, edgeInit: Parameters<typeof startEdge>[0] = {}): Test<HostileCtx> {
  const test = suite<HostileCtx>(name);
  test.before(async (ctx) => {
    ctx.origin = await startOrigin((_req, res) => res.end('good'));
    // No reconnect grace: a closed session's name answers 404 at once instead of after 5 s.
    ctx.edge = await startEdge({ pingIntervalMs: 60_000, reconnectGraceMs: 0, ...edgeInit });
    ctx.good = await startAgent(ctx.edge, ctx.origin.url, 'good', { transport: 'websocket' });
  });
  test.after.each(async (ctx) => {
    await ctx.raw?.close();
    ctx.raw = undefined;
    await waitFor(() => ctx.edge.stats().sessions === 1 && ctx.edge.stats().wsConnections === 1, 5000, 'only the good session left');
    const { body } = await send(ctx.edge, 'good', '/');
    assert.is(body.toString(), 'good');
    await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'exchanges released');
  });
  test.after(async (ctx) => {
    await ctx.good.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });
  return test;
}
