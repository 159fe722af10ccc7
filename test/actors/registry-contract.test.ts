import { ClusterRegistry } from '../../src/actors/cluster-registry.js';
import { RedisLeases } from '../../src/actors/redis-leases.js';
import { MemoryRegistry, type Registry } from '../../src/actors/registry.js';
import { silentLogger } from '../../src/logger.js';
import { waitFor } from '../helpers/harness.js';
import { CONTRACT_GRACE_MS, registryContract } from '../helpers/registry-contract.js';
import { RedisServer } from '../helpers/redis-server.js';

registryContract('memory', async () => {
  const one = new MemoryRegistry(CONTRACT_GRACE_MS);
  return { a: one, b: one, close: async () => undefined };
});

let redis: RedisServer | undefined;

/** Two edges' ClusterRegistry on one Redis, emptied before each test. */
async function redisPair() {
  redis ??= await RedisServer.start();
  await redis.flush();
  const edge = (edgeId: string): ClusterRegistry =>
    new ClusterRegistry({ leases: new RedisLeases({ url: redis!.url, edgeId, logger: silentLogger() }), logger: silentLogger(), reconnectGraceMs: CONTRACT_GRACE_MS });
  const [a, b] = [edge('edge-a'), edge('edge-b')];
  await waitFor(() => a.reachable && b.reachable, 10_000, 'both edges to reach Redis');
  return {
    a,
    b,
    heldEpoch: (reg: Registry, key: string) => (reg as ClusterRegistry).heldEpoch(key),
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

if (RedisServer.available('registry contract: redis')) {
  registryContract('redis (two edges)', redisPair, async () => {
    await redis?.stop();
  });
}
