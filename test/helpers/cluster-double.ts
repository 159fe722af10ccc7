import type { ClusterDirectoryRegistry, Lease, PeerForwarder } from '../../src/actors/cluster.js';
import { MemoryRegistry, type ClaimOptions, type ReleaseOptions, type TunnelSession } from '../../src/actors/registry.js';
import { Edge } from '../../src/edge/edge-server.js';
import type { EdgeInit } from '../../src/edge/edge-config.js';
import { silentLogger } from '../../src/logger.js';

/** The secret the test clusters share. */
export const TEST_PEER_SECRET = 'test-peer-secret-0123456789';

/**
 * A shared lease store held in memory, standing in for Redis in the forwarding tests (the real one is
 * the registry's, issue 14 part 1): one lease per (key, edge), epochs from one counter.
 */
export class MemoryLeaseStore {
  private epoch = 0;
  readonly leases = new Map<string, Lease[]>();
  readonly urls = new Map<string, string>();
  /** Each edge's registry (a test reads what its directory forgot). */
  readonly registries = new Map<string, TestClusterRegistry>();

  /** `edgeId` holds `key` under a new epoch (a claim, or the same agent taking it over). */
  claim(key: string, edgeId: string): Lease {
    const lease = { key, edgeId, epoch: ++this.epoch };
    this.leases.set(key, [...(this.leases.get(key) ?? []).filter((l) => l.edgeId !== edgeId), lease]);
    return lease;
  }

  release(key: string, edgeId: string): void {
    const left = (this.leases.get(key) ?? []).filter((l) => l.edgeId !== edgeId);
    if (left.length) this.leases.set(key, left);
    else this.leases.delete(key);
  }
}

/**
 * One edge's registry in a test cluster, and its view of the store (the ClusterRegistry's two roles,
 * actors/cluster.ts ClusterDirectoryRegistry): local sessions in a MemoryRegistry, each claim a lease in
 * the store; on a local miss, the first lease of another edge, as a session from the forwarder. The
 * directory caches what it located until `forget`, as the real one does between hints.
 */
export class TestClusterRegistry implements ClusterDirectoryRegistry {
  readonly local: MemoryRegistry;
  private readonly cache = new Map<string, Lease[]>();
  private forwarder: PeerForwarder | undefined;
  /** Keys forgotten (a peer answered misdirected, or could not be reached). */
  readonly forgotten: string[] = [];
  /** The last session on another edge this registry handed out. */
  lastRemote: TunnelSession | undefined;

  constructor(
    private readonly store: MemoryLeaseStore,
    readonly edgeId: string,
    reconnectGraceMs = 0,
  ) {
    this.local = new MemoryRegistry(reconnectGraceMs);
  }

  useForwarder(forwarder: PeerForwarder): void {
    this.forwarder = forwarder;
  }

  async claim(name: string, session: TunnelSession, options: ClaimOptions): Promise<void> {
    await this.local.claim(name, session, options);
    this.store.claim(name, this.edgeId);
  }

  async release(name: string, session: TunnelSession, options: ReleaseOptions): Promise<void> {
    await this.local.release(name, session, options);
    if (!this.local.lookup(name)) this.store.release(name, this.edgeId);
  }

  lookup(name: string): TunnelSession | undefined {
    return this.local.lookup(name);
  }

  async waitFor(name: string, timeoutMs: number): Promise<TunnelSession | undefined> {
    const [lease] = this.forwarder ? await this.locate(name) : [];
    if (lease) return (this.lastRemote = this.forwarder!.sessionFor(lease));
    return this.local.waitFor(name, timeoutMs);
  }

  async locate(key: string): Promise<Lease[]> {
    let leases = this.cache.get(key);
    if (!leases) {
      leases = (this.store.leases.get(key) ?? []).filter((l) => l.edgeId !== this.edgeId).map((l) => ({ ...l }));
      this.cache.set(key, leases);
    }
    return leases;
  }

  forget(key: string): void {
    this.forgotten.push(key);
    this.cache.delete(key);
  }

  /** One re-read, no wait (the store has no hints to wait for): another lease, else a local session. */
  async relocate(key: string, failed: Lease): Promise<TunnelSession | undefined> {
    this.forget(key);
    const next = (await this.locate(key)).find((l) => l.edgeId !== failed.edgeId || l.epoch !== failed.epoch);
    if (next) return (this.lastRemote = this.forwarder!.sessionFor(next));
    return this.local.lookup(key);
  }

  async peerUrl(edgeId: string): Promise<string | undefined> {
    return this.store.urls.get(edgeId);
  }

  heldEpoch(key: string): number | undefined {
    return this.store.leases.get(key)?.find((l) => l.edgeId === this.edgeId)?.epoch;
  }
}

/** Starts an edge of a test cluster on loopback (peer listener on a free port, its URL put in the store). */
export async function startClusterEdge(store: MemoryLeaseStore, edgeId: string, init: Partial<EdgeInit> = {}): Promise<Edge> {
  const registry = new TestClusterRegistry(store, edgeId, init.reconnectGraceMs ?? 0);
  store.registries.set(edgeId, registry);
  const edge = await Edge.start({
    listen: '127.0.0.1:0',
    grpcListen: '127.0.0.1:0',
    logger: silentLogger(),
    peerListen: '127.0.0.1:0',
    peerSecret: TEST_PEER_SECRET,
    registry,
    ...init,
  });
  store.urls.set(edgeId, edge.peerUrl!);
  return edge;
}
