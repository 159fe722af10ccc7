import * as assert from 'uvu/assert';
import { MemoryRegistry } from '../../src/actors/registry.js';
import { AgentAdmission, PICK_NAME_DRAWS } from '../../src/edge/agent-admission.js';
import { DEFAULT_LIMITS } from '../../src/edge/limits.js';
import { EdgeMetrics } from '../../src/edge/metrics.js';
import { TokenAuthority } from '../../src/edge/tokens.js';
import { silentLogger } from '../../src/logger.js';
import { suite } from '../helpers/suite.js';

const test = suite('edge/agent-admission');

const admission = (heldElsewhere?: (key: string) => Promise<boolean>): AgentAdmission =>
  new AgentAdmission({
    registry: new MemoryRegistry(),
    tokens: new TokenAuthority([]),
    metrics: new EdgeMetrics(() => ({ openExchanges: 0, sessionsByTransport: {} })),
    logger: silentLogger(),
    limits: DEFAULT_LIMITS,
    heldElsewhere,
  });

// Several edges: lookup() sees only this edge's agents, so a random name another edge held was handed
// out and then refused by the claim (ERR_NAME_TAKEN for a name the agent never asked for).
test('pickFreeName draws again while another edge holds the name, at most PICK_NAME_DRAWS times', async () => {
  const asked: string[] = [];
  const name = await admission(async (key) => (asked.push(key), asked.length < 3)).pickFreeName(undefined);
  assert.is(asked.length, 3);
  assert.is(name, asked[2]);
  const always: string[] = [];
  await admission(async (key) => (always.push(key), true)).pickFreeName(undefined);
  assert.is(always.length, PICK_NAME_DRAWS - 1, 'bounded: the last draw goes to the claim unasked');
  assert.ok(await admission().pickFreeName(undefined), 'one edge alone: no question asked');
});

test.run();
