import { EventEmitter } from 'node:events';
import { AbortError, AgentUnavailableError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AbortOptions } from '../wait.js';
import { checkEdgeLink } from './edge-link.js';
import { negotiate, type Negotiated, type NegotiateInit, type ResumeTicket } from './negotiate.js';
import { OriginProxy, type RequestRecord } from './origin-proxy.js';
import type { ProxyProtocolVersion } from './proxy-protocol.js';
import { TcpOrigin } from './tcp-origin.js';
import { UdpOrigin } from './udp-origin.js';
import { TunnelKind } from '../codec/tunnel-codec.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { reconnect } from './reconnect.js';
import type { SessionClient } from './session-client.js';

export interface AgentInit extends Omit<NegotiateInit, 'name' | 'tunnelKind'> {
  /** The local service (http://, https:// or h2c://; its path is a base path), or tcp:// (udp://) host:port for a TCP (UDP) tunnel. */
  origin: URL;
  /** https:// origin: accept a certificate that does not verify. Default false. */
  originInsecure?: boolean;
  /** Host the origin sees: preserve (default), rewrite, or a literal host[:port]. */
  hostHeader?: string;
  /** TCP tunnels: send the public client's address to the origin first (PROXY protocol). */
  proxyProtocol?: ProxyProtocolVersion;
  /** Tunnel name; absent, the edge picks a random one inside the token's scope (HTTP tunnels). */
  name?: string;
  logger: Logger;
}

export interface AgentEvents {
  /** Connected (first time or again) over `transport`. */
  connected: [url: string, transport: string, reconnect: boolean];
  /** The connection was lost; the next attempt comes in `delayMs`. */
  reconnecting: [reason: string, delayMs: number];
  /** One exchange finished (the origin proxy's log entry). */
  request: [entry: RequestRecord];
}

export interface AgentCloseOptions extends AbortOptions {
  /** Leave the edge and let in-flight exchanges finish for up to this many ms first; default 0 (abort them). */
  graceMs?: number;
}

/** What serves the edge's exchanges against the local service: OriginProxy (HTTP) or TcpOrigin. */
interface OriginHandler {
  serve(head: HTTPChunk, exchange: ExchangeDuplex, options?: AbortOptions): Promise<void>;
  close(): void;
  onRequest: ((entry: RequestRecord) => void) | undefined;
  /** Bytes it holds for the tunnel (UDP replies); absent: none beyond the exchanges' windows. */
  bufferedBytes?(): number;
  /** Datagrams it dropped (UDP replies beyond its bounds) since it started; absent: it never drops. */
  droppedDatagrams?(): number;
}

/** A tcp:// origin makes a TCP tunnel, udp:// a UDP one; anything else an HTTP one. */
function tunnelKindOf(origin: URL): TunnelKind {
  return origin.protocol === 'tcp:' ? TunnelKind.TCP : origin.protocol === 'udp:' ? TunnelKind.UDP : TunnelKind.HTTP;
}

function originHandler(init: AgentInit): OriginHandler {
  const { origin, logger } = init;
  const kind = tunnelKindOf(origin);
  if (kind === TunnelKind.HTTP) return new OriginProxy({ origin, originInsecure: init.originInsecure, hostHeader: init.hostHeader, logger });
  const where = { host: origin.hostname.replace(/^\[|\]$/g, ''), port: Number(origin.port), logger };
  return kind === TunnelKind.TCP ? new TcpOrigin({ ...where, proxyProtocol: init.proxyProtocol }) : new UdpOrigin(where);
}

/**
 * The agent's composition root: negotiates a session with the edge (negotiate.ts), serves its
 * exchanges against the origin (OriginProxy), reconnects when it is lost (reconnect.ts, resuming the
 * session) and leaves gracefully (SessionClient.leave). Teardown order (abort): reconnect loop
 * stopped → sessions aborted (exchanges aborted) → origin connections closed → `closed` settles.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly name: string;
  /** Resolves with the reason once the agent stops for good (close(), or a refusal no retry fixes). */
  readonly closed: Promise<Error>;
  private current: Negotiated;
  private readonly init: AgentInit & { name: string; tunnelKind: TunnelKind };
  private readonly proxy: OriginHandler;
  private readonly live = new Set<SessionClient>();
  /** Aborted when the agent stops: ends the reconnect loop and any connect in progress. */
  private readonly stopping = new AbortController();
  private resolveClosed!: (err: Error) => void;
  private reconnecting = false;
  private leaving = false;

  private constructor(init: AgentInit & { name: string; tunnelKind: TunnelKind }, proxy: OriginHandler, first: Negotiated) {
    super();
    this.init = init;
    this.proxy = proxy;
    this.current = first;
    this.name = init.name;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    proxy.onRequest = (entry) => this.emit('request', entry);
    this.watch(first.session);
  }

  /**
   * Round trip to the edge, ms, as the edge measures its pings to this session (session-client.ts);
   * undefined until the first report, one ping interval after connecting.
   */
  get rttMs(): number | undefined {
    return this.current.session.rttMs;
  }

  get url(): string {
    return this.current.session.url;
  }

  /** `grpc` or `websocket/<subprotocol>`. */
  get transport(): string {
    return this.current.transport;
  }

  /** True while a session is registered (the agent's /readyz). */
  get connected(): boolean {
    return this.live.size > 0 && !this.stopping.signal.aborted;
  }

  /** Connects once; the first failure is the caller's (exit 1), later ones are retried. */
  static async start(init: AgentInit, options: AbortOptions = {}): Promise<Agent> {
    checkEdgeLink(init);
    const proxy = originHandler(init);
    const named = { ...init, name: init.name ?? '', tunnelKind: tunnelKindOf(init.origin) };
    let self: Agent | undefined;
    try {
      const first = await negotiate(named, { ...options, onExchange: proxy.serve.bind(proxy), onDrain: () => self?.onEdgeDrain() });
      self = new Agent({ ...named, name: first.session.name }, proxy, first);
      return self;
    } catch (err) {
      proxy.close();
      throw err;
    }
  }

  /** Bytes the origin side holds for the tunnel beyond the exchanges' windows (a UDP tunnel's queued replies). */
  bufferedBytes(): number {
    return this.proxy.bufferedBytes?.() ?? 0;
  }

  /**
   * A UDP tunnel's replies dropped at the agent's bounded queues (the tunnel slower than the origin)
   * since it started; undefined for other tunnels. Shown in /readyz, the status view and the leave log,
   * as the edge counts its own drops in jetty_udp_dropped_total.
   */
  droppedDatagrams(): number | undefined {
    return this.proxy.droppedDatagrams?.();
  }

  /** Exchanges in flight, and (gRPC) idle ForwardHTTP streams waiting for the edge's next request. */
  stats(): { openExchanges: number; idleStreams: number } {
    let openExchanges = 0;
    let idleStreams = 0;
    for (const s of this.live) {
      const st = s.stats();
      openExchanges += st.openExchanges;
      idleStreams += st.idleStreams;
    }
    return { openExchanges, idleStreams };
  }

  /**
   * Graceful stop (SIGTERM): leaves the pool (the edge sends nothing new), lets in-flight exchanges
   * finish for up to `graceMs`, then closes.
   */
  async leave(graceMs: number, options: AbortOptions = {}): Promise<void> {
    this.leaving = true;
    this.init.logger.info({ exchanges: this.stats().openExchanges, graceMs, udpDropped: this.droppedDatagrams() }, 'leaving');
    try {
      await Promise.all([...this.live].map((s) => s.close({ ...options, graceMs })));
    } finally {
      await this.close();
    }
  }

  /** Stops serving: with `graceMs`, after leave(graceMs); else at once, aborting in-flight exchanges. */
  async close(options: AgentCloseOptions = {}): Promise<void> {
    if (options.graceMs && !this.leaving) return this.leave(options.graceMs, options);
    this.abort(new AbortError('agent closed'));
    await this.closed;
  }

  /** Stops at once; `closed` settles with `reason`. Idempotent. */
  abort(reason: Error): void {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort(reason);
    for (const s of this.live) s.abort(reason);
    this.proxy.close();
    this.resolveClosed(reason);
  }

  private watch(session: SessionClient): void {
    // A reconnecting TCP/UDP agent asks for the port it had, which the edge holds for it.
    if (session.port) this.init.remotePort = session.port;
    this.live.add(session);
    void session.closed.then((reason) => {
      this.live.delete(session);
      if (this.stopping.signal.aborted || this.leaving || session !== this.current.session) return;
      void this.reconnect(reason, { sessionId: session.sessionId, secret: session.resumeSecret });
    });
  }

  /** Finds a session again (one loop at a time: a drain and a lost connection can both ask). */
  private async reconnect(reason: Error, resume: ResumeTicket | undefined): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const { signal } = this.stopping;
    try {
      const connect = (options: AbortOptions) => negotiate(this.init, { ...options, resume, onExchange: this.proxy.serve.bind(this.proxy), onDrain: () => this.onEdgeDrain() });
      const next = await reconnect(reason, connect, { signal, onRetry: (why, delayMs) => this.emit('reconnecting', why, delayMs) });
      if (signal.aborted) return next.session.abort(toError(signal.reason));
      this.current = next;
      this.watch(next.session);
      this.emit('connected', next.session.url, next.transport, true);
    } catch (err) {
      // Aborted: the agent is stopping already. Otherwise a refusal no retry can fix.
      if (!signal.aborted) this.abort(toError(err));
    } finally {
      this.reconnecting = false;
    }
  }

  /** The edge is draining: find another one now; the old session finishes what it carries. */
  private onEdgeDrain(): void {
    // While leaving, the edge's Drain is its acknowledgement of ours (SessionClient.leave waits for it).
    if (this.leaving) return;
    const old = this.current.session;
    this.init.logger.info('edge is draining: reconnecting');
    void this.reconnect(new AgentUnavailableError('edge is draining'), undefined).then(() => {
      if (this.current.session !== old) void old.close();
    });
  }
}
