import type { Lease, PeerForwarder, TunnelDirectory } from '../actors/cluster.js';
import type { OpenExchangeOptions, TunnelSession } from '../actors/registry.js';
import { EXCHANGE_KIND_NAMES, exchangeKindOf, type HTTPChunk } from '../codec/http-chunk.js';
import { AgentUnavailableError, EdgeUnavailableError, PeerUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { ForwardedExchange, ownerDidNotTake } from './forwarded-exchange.js';
import type { EdgeMetrics } from './metrics.js';
import { withForwardFields } from './peer-fields.js';
import { PeerLink } from './peer-link.js';
import { PeerSession } from './peer-session.js';

export interface EdgePeerForwarderInit {
  directory: TunnelDirectory;
  /** The shared secret of the cluster (`peer-secret`). */
  secret: string;
  /** Credit window per forwarded exchange, bytes (the edge's `ws-window`). */
  windowBytes: number;
  /**
   * How long an exchange the owner refused waits for the tunnel's agent to show up on another edge
   * (the edge's `reconnect-grace`), ms: as long as a local request waits for a reconnecting agent.
   */
  reconnectGraceMs: number;
  /** CA for https:// peers instead of the system roots (`peer-ca`). */
  ca?: Buffer;
  metrics: EdgeMetrics;
  logger: Logger;
}

/**
 * The forwarding side of a cluster: `sessionFor(lease)` is a session whose exchanges go to the edge
 * holding the lease, over one pooled WebSocket per peer edge (opened on first use, again after it
 * was lost or went idle, closed with the forwarder). Each forwarded request carries the lease's key
 * and epoch; an owner that answers MISDIRECTED, or cannot be reached, makes the forwarder drop what
 * the directory cached, locate the key again and retry once on the owner it names now.
 *
 * Teardown order (close): no new exchanges → every peer connection closed (their exchanges fail).
 */
export class EdgePeerForwarder implements PeerForwarder {
  closing = false;
  private readonly links = new Map<string, Promise<PeerLink>>();
  private readonly init: EdgePeerForwarderInit;

  constructor(init: EdgePeerForwarderInit) {
    this.init = init;
  }

  sessionFor(lease: Lease): TunnelSession {
    return new PeerSession(this, lease);
  }

  /** Opens `head` on the owner of `lease`; one retry on the owner a fresh lookup names. */
  async forward(lease: Lease, head: HTTPChunk, onLink: (link: PeerLink) => void, options?: OpenExchangeOptions): Promise<ExchangeDuplex> {
    let first: ExchangeDuplex;
    let retryLeft = true;
    try {
      first = await this.openOn(lease, head, onLink, options);
    } catch (err) {
      if (!(err instanceof PeerUnavailableError)) throw err;
      retryLeft = false;
      first = await this.relocate(lease, head, options, err);
    }
    this.init.metrics.peerForwarded.inc({ kind: EXCHANGE_KIND_NAMES[exchangeKindOf(head)] });
    return new ForwardedExchange(first, head, retryLeft ? (cause) => this.relocate(lease, head, options, cause) : undefined);
  }

  /**
   * After `lease` failed (its owner refused the exchange or cannot be reached): the session the
   * directory names now, waited for within reconnect-grace while the agent moves (a drain told it to
   * go, or its edge died), and the request opened there. On a peer that is a plain open (one retry
   * in all); the agent may also have come back to this edge.
   */
  private async relocate(lease: Lease, head: HTTPChunk, options: OpenExchangeOptions | undefined, cause?: Error): Promise<ExchangeDuplex> {
    const { directory, metrics, reconnectGraceMs } = this.init;
    const next = await directory.relocate(lease.key, lease, reconnectGraceMs, { signal: options?.signal });
    options?.signal?.throwIfAborted();
    if (!next || this.closing) {
      // The owner is alive and said it does not serve it now (a drain, a takeover under way): worth another try soon.
      if (ownerDidNotTake(cause)) throw new EdgeUnavailableError('the tunnel is moving between edges: try again shortly', 'tunnel_moving', 1);
      throw new AgentUnavailableError('the edge holding this tunnel no longer serves it', { cause });
    }
    metrics.peerRetries.inc();
    if (next instanceof PeerSession) return this.openOn(next.lease, head, () => undefined, options);
    return next.openExchange(head, options);
  }

  private async openOn(lease: Lease, head: HTTPChunk, onLink: (link: PeerLink) => void, options?: OpenExchangeOptions): Promise<ExchangeDuplex> {
    if (this.closing) throw new AgentUnavailableError('edge shutting down');
    const link = await this.link(lease.edgeId, options);
    onLink(link);
    return link.openExchange(withForwardFields(head, lease));
  }

  /** The pooled connection to `edgeId`, opened if there is none (or it was lost). */
  private async link(edgeId: string, options?: OpenExchangeOptions): Promise<PeerLink> {
    const pooled = this.links.get(edgeId);
    if (pooled) {
      const link = await pooled.catch(() => undefined);
      if (link && !link.isClosed) return link;
      if (this.links.get(edgeId) === pooled) this.links.delete(edgeId);
      // A connection attempt another exchange made failed: this one tries again below.
      if (this.links.has(edgeId)) return this.link(edgeId, options);
    }
    const opening = this.connect(edgeId, options);
    this.links.set(edgeId, opening);
    try {
      const link = await opening;
      void link.closed.then(() => {
        if (this.links.get(edgeId) === opening) this.links.delete(edgeId);
      });
      if (this.closing) link.close(new AgentUnavailableError('edge shutting down'));
      return link;
    } catch (err) {
      if (this.links.get(edgeId) === opening) this.links.delete(edgeId);
      throw err;
    }
  }

  private async connect(edgeId: string, options?: OpenExchangeOptions): Promise<PeerLink> {
    const { directory, secret, windowBytes, ca, metrics, logger } = this.init;
    const url = await directory.peerUrl(edgeId);
    if (!url) throw new PeerUnavailableError(`no peer URL known for edge ${edgeId}`);
    return PeerLink.connect({ url, peerId: edgeId, edgeId: directory.edgeId, secret, windowBytes, ca, metrics, logger }, { signal: options?.signal });
  }

  /** Open peer connections. */
  get connections(): number {
    return this.links.size;
  }

  /** Closes every peer connection; their exchanges fail. */
  async close(): Promise<void> {
    this.closing = true;
    const links = await Promise.all([...this.links.values()].map((p) => p.catch(() => undefined)));
    this.links.clear();
    const err = new AgentUnavailableError('edge shutting down');
    await Promise.all(links.map((l) => l && (l.close(err), l.closed)));
  }
}
