import { suite } from './suite.js';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MIN_IDLE_STREAMS } from '../../src/agent/grpc-connection.js';
import { startAgent, startEdge, startOrigin, waitFor, type Origin } from './harness.js';
import { describe, loadOrigin, runLoad, type LoadKind } from './load.js';

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: Origin;
}

const NAME = 'load';
/** How long each load phase runs; bounded so the suite stays a few seconds per transport. */
const PHASE_MS = Number(process.env.JETTY_LOAD_PHASE_MS ?? 1500);

/**
 * Load correctness, the same cases for every transport and codec: many keep-alive clients, every
 * answer checked (status and body), zero failures allowed; afterwards every exchange is released.
 */
export function loadSuite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`load (${label})`);

  test.before(async (ctx) => {
    ctx.origin = await startOrigin(loadOrigin);
    // Every client of a load phase comes from 127.0.0.1: the per-address cap must not be what it measures.
    ctx.edge = await startEdge({ limits: { maxConnectionsPerIp: 1000 } });
    ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME, options);
  });

  test.after.each(async (ctx) => {
    await waitFor(() => ctx.edge.stats().openExchanges === 0 && ctx.agent.stats().openExchanges === 0, 5000, 'open exchanges to reach zero');
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });

  const phase = (kind: LoadKind, connections: number, echoBytes?: number) => async (ctx: Ctx) => {
    const result = await runLoad({
      port: ctx.edge.publicPort,
      host: `${NAME}.localhost:${ctx.edge.publicPort}`,
      connections,
      durationMs: PHASE_MS,
      kind,
      echoBytes,
    });
    assert.ok(result.failures.size === 0, describe(result));
    assert.ok(result.ok > connections, `too few requests completed: ${describe(result)}`);
    if (kind === 'abort-mix') assert.ok(result.aborted > 0, 'the abort mix aborted nothing');
    // Aborted exchanges leave no stream behind: the agent's idle pool is back to (at least) its size.
    if (options.transport === 'grpc') await waitFor(() => ctx.agent.stats().idleStreams >= MIN_IDLE_STREAMS, 5000, 'the idle-stream pool to refill');
  };

  test('50 keep-alive connections of small GETs: every answer is its own, none fails', phase('small', 50));
  test('200 keep-alive connections of small GETs: none fails', phase('small', 200));
  test('50 connections of 1 MiB POST echoes: every body comes back intact', phase('echo', 50, 1024 * 1024));
  test('small GETs while one client in ten aborts mid-response: only the aborted ones end early', phase('abort-mix', 50));

  test.run();
}
