import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from './harness.js';

/** An edge with one well-behaved agent ("good"), beside which tests connect hostile peers. */
export interface HostileBed {
  edge: Edge;
  origin: Origin;
  good: Agent;
}

export async function startHostileBed(init: Parameters<typeof startEdge>[0] = {}): Promise<HostileBed> {
  const origin = await startOrigin((_req, res) => res.end('good'));
  const edge = await startEdge({ pingIntervalMs: 60_000, ...init });
  const good = await startAgent(edge, origin.url, 'good', { transport: 'websocket' });
  return { edge, origin, good };
}

/** Whatever a hostile peer did, the edge still serves the good tunnel and holds no exchange. */
export async function assertStillServing(bed: HostileBed): Promise<void> {
  const { body } = await send(bed.edge, 'good', '/');
  assert.is(body.toString(), 'good');
  await waitFor(() => bed.edge.stats().openExchanges === 0, 5000, 'exchanges released');
}

export async function closeHostileBed(bed: HostileBed): Promise<void> {
  await bed.good.close();
  await bed.edge.close();
  await bed.origin.close();
}
