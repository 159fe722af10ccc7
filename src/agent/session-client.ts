import { EventEmitter } from 'node:events';
import { Heartbeat } from '../actors/heartbeat.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage, TunnelKind } from '../codec/tunnel-codec.js';
import { AbortError, AgentUnavailableError, ExchangeResetError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { waitUntil, type AbortOptions } from '../wait.js';
import { checkRegistered } from './edge-answers.js';
import { registrationError } from './refusals.js';

/** How long to wait for the edge to answer Hello, ms. */
export const REGISTER_TIMEOUT_MS = 10_000;
/** Largest round trip the agent believes from the edge's Ping.rtt_us, ms; above it, the report is ignored. */
export const MAX_EDGE_RTT_MS = 60_000;

/** How long leave() waits for the edge to acknowledge (with its own Drain) that it sends nothing new, ms. */
export const LEAVE_ACK_TIMEOUT_MS = 2_000;

/** Called for every exchange the edge starts; the session does not wait for it. */
export type ExchangeHandler = (head: HTTPChunk, exchange: ExchangeDuplex) => Promise<void>;

export type Registered = NonNullable<EdgeMessage['registered']>;

/**
 * What a transport adapter does for the session: move control messages and start exchanges. The
 * adapter reports back with `session.receive(msg)`, `session.serve(head, exchange)` and
 * `session.ended(err)`.
 */
export interface SessionTransport {
  /** Writes one control message to the edge; dropped once the transport is closed. */
  send(msg: AgentMessage): void;
  /** The edge accepted us: start serving (gRPC fills its pool of idle streams). */
  start(registered: Registered): void;
  /** The edge asked for an exchange on the control stream (gRPC: open a stream that carries it). */
  open(head: HTTPChunk): void;
  /** Tears the transport down at once; idempotent. */
  close(err: Error): void;
  /** Idle exchange streams waiting for the edge (gRPC); 0 where exchanges need none. */
  idleStreams(): number;
}

export interface SessionClientInit {
  name: string;
  version: string;
  /** The edge's domain (discovery): Registered.url must be NAME.DOMAIN. */
  domain?: string;
  /** Where the edge is, for messages. */
  where: string;
  /** DATA bytes accepted per exchange, announced in Hello (WebSocket); absent where the transport has its own. */
  window?: number;
  /** The previous session id and its resume secret after a reconnect. */
  resume?: string;
  resumeSecret?: string;
  /** How long registration may take, ms; default REGISTER_TIMEOUT_MS. */
  timeoutMs?: number;
  /** What the tunnel serves; default HTTP. */
  tunnelKind?: TunnelKind;
  /** TCP/UDP: the public port asked for; absent = the edge picks one. */
  remotePort?: number;
  onExchange: ExchangeHandler;
  /** The edge is draining: it sends no new exchanges on this session. */
  onDrain?: () => void;
}

/** hello: Hello sent, waiting for Registered · registered: serving · closed: over. */
export type SessionClientStatus = 'hello' | 'registered' | 'closed';

export interface SessionClientEvents {
  /** The edge reported its latest ping round trip to us (rttMs). */
  rtt: [rttMs: number];
  /** An exchange finished; `openExchanges` counts what is left. */
  exchangeClosed: [];
  /** The edge said Drain (it sends nothing new; while leaving, that is its acknowledgement). */
  drain: [];
  /** The session is over (aborted, or the edge ended it). */
  ended: [];
}

/**
 * The agent's side of the session protocol, for every transport: Hello → Registered (checked) or a
 * refusal, within a deadline; then Ping/Pong liveness, Open, Cancel, Drain and leave. Transports only
 * move the messages (SessionTransport). Teardown order (abort): heartbeat stopped → exchanges aborted
 * → transport closed → `closed` settles.
 */
export class SessionClient extends EventEmitter<SessionClientEvents> {
  status: SessionClientStatus = 'hello';
  /** Resolves with the reason once the session is over (edge gone, closed locally). */
  readonly closed: Promise<Error>;
  private registeredAs: Registered | undefined;
  private transport: SessionTransport | undefined;
  private readonly init: SessionClientInit;
  private readonly active = new Map<string, ExchangeDuplex>();
  private heartbeat: Heartbeat | undefined;
  private timer: NodeJS.Timeout | undefined;
  private drained = false;
  /** The edge's last ping round trip to this agent, ms; undefined until it reports one. */
  rttMs: number | undefined;
  private resolveClosed!: (err: Error) => void;
  private handshake: { resolve: (s: SessionClient) => void; reject: (err: Error) => void } | undefined;

  constructor(init: SessionClientInit) {
    super();
    this.init = init;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get name(): string {
    return this.registeredAs?.name ?? this.init.name;
  }
  get url(): string {
    return this.registeredAs?.url ?? '';
  }
  /** TCP/UDP tunnels: the public port the edge gave; 0 otherwise. */
  get port(): number {
    return this.registeredAs?.port ?? 0;
  }
  get sessionId(): string {
    return this.registeredAs?.sessionId ?? '';
  }
  /** Issued by the edge with this session: presented to resume it after a reconnect. */
  get resumeSecret(): string {
    return this.registeredAs?.resumeSecret ?? '';
  }
  get openExchanges(): number {
    return this.active.size;
  }

  stats(): { openExchanges: number; idleStreams: number } {
    return { openExchanges: this.active.size, idleStreams: this.transport?.idleStreams() ?? 0 };
  }

  /**
   * Sends Hello over `transport` and resolves once the edge registered us. Rejects with the refusal
   * (REFUSALS), ProtocolError (a bad Registered) or AgentUnavailableError (no answer in time, edge gone).
   */
  register(transport: SessionTransport, options: AbortOptions = {}): Promise<SessionClient> {
    this.transport = transport;
    const { init } = this;
    const done = new Promise<SessionClient>((resolve, reject) => (this.handshake = { resolve, reject }));
    const timeoutMs = init.timeoutMs ?? REGISTER_TIMEOUT_MS;
    this.timer = setTimeout(() => this.abort(new AgentUnavailableError(`edge at ${init.where} did not answer within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = (): void => this.abort(options.signal!.reason as Error);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    void done.finally(() => options.signal?.removeEventListener('abort', onAbort)).catch(() => undefined);
    if (options.signal?.aborted) onAbort();
    else {
      const window = init.window === undefined ? {} : { window: init.window };
      const kind = init.tunnelKind ? { tunnelKind: init.tunnelKind, remotePort: init.remotePort ?? 0 } : {};
      // foldedChunks: every exchange of this agent reads folded chunks (ExchangeBase unfolds them).
      transport.send({ hello: { name: init.name, version: init.version, ...window, resume: init.resume ?? '', resumeSecret: init.resumeSecret ?? '', ...kind, foldedChunks: true } });
    }
    return done;
  }

  /** One control message from the edge. */
  receive(msg: EdgeMessage): void {
    if (this.status === 'closed') return;
    if (this.status === 'hello') {
      if (msg.registered) this.onRegistered(msg.registered);
      return;
    }
    if (msg.open) this.transport!.open(msg.open.headers);
    else if (msg.cancel) {
      this.active.get(msg.cancel.exchangeId)?.abort(new ExchangeResetError('cancelled by the edge', msg.cancel.code), msg.cancel.code);
    } else if (msg.ping) {
      this.heartbeat?.alive();
      const rttMs = (msg.ping.rttUs ?? 0) / 1000;
      if (rttMs > 0 && rttMs <= MAX_EDGE_RTT_MS) {
        this.rttMs = rttMs;
        this.emit('rtt', rttMs);
      }
      this.transport!.send({ pong: { nonce: msg.ping.nonce } });
    } else if (msg.drain) {
      this.drained = true;
      this.emit('drain');
      this.init.onDrain?.();
    }
  }

  /** The transport delivers an exchange; it counts as open until its `closed` settles. */
  serve(head: HTTPChunk, exchange: ExchangeDuplex): Promise<void> {
    this.active.set(exchange.id, exchange);
    const done = (): void => {
      if (this.active.get(exchange.id) === exchange) this.active.delete(exchange.id);
      this.emit('exchangeClosed');
    };
    void exchange.closed.then(done, done);
    return this.init.onExchange(head, exchange);
  }

  /** The transport is over (`err`: why, a refusal already mapped through REFUSALS). */
  ended(err: Error): void {
    if (this.status === 'closed') return;
    this.abort(this.status === 'hello' ? registrationError(err, this.init.where) : lost(err));
  }

  /**
   * Tells the edge this agent is leaving and waits, up to LEAVE_ACK_TIMEOUT_MS, for its Drain: no new
   * exchanges come after it. Those in flight go on.
   */
  async leave(options: AbortOptions = {}): Promise<void> {
    if (this.status !== 'registered') return;
    this.transport!.send({ drain: { gracePeriodMs: 0 } });
    await waitUntil(this, 'drain', () => this.drained || this.status === 'closed', { ...options, timeoutMs: LEAVE_ACK_TIMEOUT_MS });
  }

  /** Resolves true once no exchange is open, false if `timeoutMs` passes first. */
  idle(options: AbortOptions & { timeoutMs?: number } = {}): Promise<boolean> {
    return waitUntil(this, 'exchangeClosed', () => this.active.size === 0, options);
  }

  /**
   * Graceful: tells the edge this agent is leaving, then waits up to `graceMs` (default 0) for the edge
   * to end the session, which it does once the last exchange it started here is done: only the edge
   * knows of an exchange still on the wire, and closing on our own count cut such exchanges. Then aborts.
   */
  async close(options: AbortOptions & { graceMs?: number } = {}): Promise<void> {
    try {
      if (options.graceMs && this.status === 'registered') {
        await this.leave(options);
        await waitUntil(this, 'ended', () => this.status === 'closed', { ...options, timeoutMs: options.graceMs });
      }
    } finally {
      this.abort(new AbortError('agent closing'));
    }
  }

  /** Ends the session at once; in-flight exchanges are aborted. Idempotent. */
  abort(err: Error): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    this.emit('ended');
    clearTimeout(this.timer);
    this.heartbeat?.stop();
    for (const exchange of this.active.values()) exchange.abort(err);
    this.transport?.close(err);
    this.handshake?.reject(err);
    this.resolveClosed(err);
  }

  private onRegistered(r: Registered): void {
    try {
      checkRegistered(r, { name: this.init.name, domain: this.init.domain, kind: this.init.tunnelKind, remotePort: this.init.remotePort });
    } catch (err) {
      this.abort(err as Error);
      return;
    }
    clearTimeout(this.timer);
    this.registeredAs = r;
    this.status = 'registered';
    const interval = r.pingIntervalMs ?? 0;
    if (interval > 0) {
      this.heartbeat = new Heartbeat({ intervalMs: interval, onDead: (silentMs) => this.abort(new AgentUnavailableError(`lost the edge: no ping for ${silentMs} ms`)) });
    }
    this.transport!.start(r);
    this.handshake!.resolve(this);
  }
}

function lost(err: Error): Error {
  return err instanceof AgentUnavailableError ? err : new AgentUnavailableError(`lost the edge: ${err.message}`, { cause: err });
}
