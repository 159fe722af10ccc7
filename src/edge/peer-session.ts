import type { Lease } from '../actors/cluster.js';
import type { OpenExchangeOptions, TunnelSession } from '../actors/registry.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import { AgentUnavailableError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { PeerLink } from './peer-link.js';

/** What a PeerSession needs from the forwarder that made it. */
export interface PeerSessionHost {
  /** Opens `head` on the owner of `lease` (retrying once on another owner); `onLink` learns the connection used. */
  forward(lease: Lease, head: HTTPChunk, onLink: (link: PeerLink) => void, options?: OpenExchangeOptions): Promise<ExchangeDuplex>;
  /** The forwarder is closing: no new exchanges. */
  readonly closing: boolean;
}

/** Transport label of forwarded exchanges in logs and metrics (fixed: no edge id in a label). */
export const PEER_TRANSPORT = 'peer';

/**
 * A tunnel session that lives on another edge (the one holding `lease`), as the registry and the
 * router see it: its exchanges go over the pooled connection to that edge. It is bound to the first
 * connection it used: when that connection is lost the session is stopped, and the registry asks the
 * forwarder for a new one (which connects again).
 */
export class PeerSession implements TunnelSession {
  readonly id: string;
  readonly name: string;
  readonly transport = PEER_TRANSPORT;
  readonly closed: Promise<void>;
  private link: PeerLink | undefined;
  private abortedWith: Error | undefined;
  private resolveClosed!: () => void;

  constructor(
    private readonly host: PeerSessionHost,
    readonly lease: Lease,
  ) {
    this.id = `peer:${lease.edgeId}:${lease.key}:${lease.epoch}`;
    this.name = lease.key;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Exchanges in flight on the connection to the owner. */
  get load(): number {
    return this.link?.load ?? 0;
  }

  get draining(): boolean {
    return this.host.closing;
  }

  get stopped(): boolean {
    return this.abortedWith !== undefined || (this.link?.isClosed ?? false);
  }

  openExchange(head: HTTPChunk, options?: OpenExchangeOptions): Promise<ExchangeDuplex> {
    if (this.stopped || this.host.closing) return Promise.reject(new AgentUnavailableError('forwarding session closed', { cause: this.abortedWith }));
    return this.host.forward(this.lease, head, (link) => this.bind(link), options);
  }

  private bind(link: PeerLink): void {
    if (this.link) return;
    this.link = link;
    void link.closed.then(() => this.resolveClosed());
  }

  /** Stops this session (the connection, shared with other sessions, stays). Idempotent. */
  abort(err: Error): void {
    this.abortedWith ??= err;
    this.resolveClosed();
  }
}

/** True for a session on another edge: an exchange a peer forwarded is never handed to one (one hop). */
export function isPeerSession(session: TunnelSession): boolean {
  return session instanceof PeerSession;
}
