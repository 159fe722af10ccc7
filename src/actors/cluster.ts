import type { AbortOptions } from '../wait.js';
import type { Registry, TunnelSession } from './registry.js';

/**
 * The seam between the shared registry (several edges, leases in Redis) and edge-to-edge forwarding.
 * The registry side implements TunnelDirectory; the forwarding side implements PeerForwarder; a
 * ClusterRegistry joins them so that the router, the TCP and the UDP listeners keep asking one
 * question (`registry.lookup(key) ?? await registry.waitFor(key, …)`) and may get back a session that
 * lives on another edge.
 */

/** One edge's claim on a tunnel key (`name`, `tcp:PORT`, `udp:PORT`) in the shared store. */
export interface Lease {
  key: string;
  /** The edge holding it (its `--edge-id`). */
  edgeId: string;
  /**
   * The fencing epoch the claim got from the store's global counter. The holder accepts a forwarded
   * exchange only while its own lease of the key still has this epoch.
   */
  epoch: number;
}

/** What forwarding needs to know about the cluster (the Redis registry; a test may hold it in memory). */
export interface TunnelDirectory {
  /** This edge's id. */
  readonly edgeId: string;
  /**
   * The leases of `key` held by other edges (several when a pool spans edges), from a short cache
   * invalidated by the store's hints, the store only on a miss. Empty when no other edge holds it.
   */
  locate(key: string): Promise<Lease[]>;
  /** Drops what is cached for `key` (a peer answered "misdirected": re-read the store once). */
  forget(key: string): void;
  /**
   * After the owner under `failed` refused an exchange (misdirected) or could not be reached: a
   * session of `key` other than that lease (a local one, or on the edge holding it now), waiting up to
   * `timeoutMs` for an agent that is moving between edges. Undefined at the deadline or on abort.
   */
  relocate(key: string, failed: Lease, timeoutMs: number, options?: AbortOptions): Promise<TunnelSession | undefined>;
  /** Where the peer listener of `edgeId` is (`http(s)://host:port`), or undefined when the edge is unknown. */
  peerUrl(edgeId: string): Promise<string | undefined>;
  /** The epoch under which this edge holds `key` right now, or undefined when it does not (or lost it). */
  heldEpoch(key: string): number | undefined;
}

/** The forwarding side: a session that opens its exchanges on the edge holding `lease`. */
export interface PeerForwarder {
  sessionFor(lease: Lease): TunnelSession;
}

/**
 * The registry of an edge in a cluster, which is the cluster's directory too and takes its forwarder
 * once that is built (the forwarder needs the directory): the ClusterRegistry. An edge whose registry
 * is one wires edge-to-edge forwarding to it.
 */
export interface ClusterDirectoryRegistry extends Registry, TunnelDirectory {
  useForwarder(forwarder: PeerForwarder): void;
}

/** True when `registry` is also the cluster's directory (see ClusterDirectoryRegistry). */
export function isClusterDirectoryRegistry(registry: Registry): registry is ClusterDirectoryRegistry {
  const r = registry as Partial<ClusterDirectoryRegistry>;
  return typeof r.useForwarder === 'function' && typeof r.heldEpoch === 'function' && typeof r.locate === 'function';
}

/** Request field that marks an exchange as forwarded by a peer edge: it is never forwarded again (one hop). */
export const FORWARDED_EPOCH_FIELD = 'jetty-forwarded-epoch';
