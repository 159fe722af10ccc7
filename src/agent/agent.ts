import { WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO } from '../codec/ws-frame.js';
import { EventEmitter } from 'node:events';
import { AbortError, AgentUnavailableError, EdgeCertificateError, NameNotAllowedError, NameTakenError, UnauthorizedError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { discover } from './discovery.js';
import { checkEdgeLink, type EdgeLink } from './edge-link.js';
import { GrpcConnection } from './grpc-connection.js';
import { randomName } from './names.js';
import { OriginProxy, type RequestRecord } from './origin-proxy.js';
import { WsConnection } from './ws-connection.js';

/** Transports an agent may ask for; auto prefers gRPC and falls back to WebSocket. */
export const AGENT_TRANSPORTS = ['auto', 'grpc', 'websocket'] as const;
export type AgentTransport = (typeof AGENT_TRANSPORTS)[number];
/** WebSocket codecs: binary protobuf frames (default) or the legacy JSON frames. */
export const WS_CODEC_NAMES = ['proto', 'json'] as const;
export type WsCodecChoice = (typeof WS_CODEC_NAMES)[number];
export const WS_MASK_NAMES = ['zero', 'random'] as const;
export type WsMaskChoice = (typeof WS_MASK_NAMES)[number];

/** In auto mode, how long gRPC may take to register before the agent falls back to WebSocket. */
export const GRPC_FALLBACK_TIMEOUT_MS = 3_000;

export const AGENT_VERSION = '0.2.0';

export interface AgentInit extends EdgeLink {
  /** The edge's public URL, e.g. http://127.0.0.1:8080; https:// means TLS on every connection to it. */
  edge: URL;
  /** The local service. */
  origin: URL;
  /** Tunnel name; a random readable one when absent. */
  name?: string;
  /** Default auto. */
  transport?: AgentTransport;
  /** WebSocket codec; default proto. */
  wsCodec?: WsCodecChoice;
  /** WebSocket: DATA bytes accepted per exchange before credit returns. */
  wsWindowBytes?: number;
  /** WebSocket frame masking: `zero` key (default, see WsConnectionInit.zeroMask) or `random` per RFC 6455. */
  wsMask?: WsMaskChoice;
  /** Agent token, when the edge requires one. */
  token?: string;
  logger: Logger;
}

type Connection = GrpcConnection | WsConnection;

/** What a reconnecting agent presents to take over its previous session. */
interface ResumeTicket {
  sessionId: string;
  secret: string;
}

/** Reconnect backoff: first delay, factor 2 per attempt, full jitter, capped. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 30_000;

/** Delay before reconnect attempt `attempt` (0-based): random in [0, min(cap, base·2^attempt)]. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt));
}

/** Refusals no retry can fix: the agent stops and says why. */
function isFinal(err: unknown): boolean {
  return err instanceof UnauthorizedError || err instanceof NameNotAllowedError || err instanceof UsageError;
}

export interface AgentEvents {
  /** Connected (first time or again) over `transport`. */
  connected: [url: string, transport: string, reconnect: boolean];
  /** The connection was lost; the next attempt comes in `delayMs`. */
  reconnecting: [reason: string, delayMs: number];
  /** One exchange finished (the origin proxy's log entry). */
  request: [entry: RequestRecord];
}

/**
 * The agent: discovers the edge, picks a transport, registers its tunnel and serves exchanges
 * against the origin. A lost connection is retried forever (backoff with jitter, cap 30 s),
 * reclaiming the name with the previous session id. Teardown order (close): reconnect loop stopped →
 * connections closed (exchanges aborted) → origin connections closed → `closed` settles.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly name: string;
  /** Resolves with the reason once the agent stops for good (close(), or a refusal no retry fixes). */
  readonly closed: Promise<Error>;
  private connection: Connection;
  private currentTransport: string;
  /** Round trip to the edge measured at the last connect, ms. */
  rttMs: number;
  private readonly init: AgentInit;
  private readonly proxy: OriginProxy;
  private readonly live = new Set<Connection>();
  private stopped: Error | undefined;
  private resolveClosed!: (err: Error) => void;
  private wake: (() => void) | undefined;
  private reconnecting = false;
  private leaving = false;
  /** Resolves leave() once every connection has ended. */
  private allClosed: (() => void) | undefined;

  private constructor(init: AgentInit, proxy: OriginProxy, first: { conn: Connection; transport: string; rttMs: number }) {
    super();
    this.rttMs = first.rttMs;
    this.init = init;
    this.proxy = proxy;
    this.connection = first.conn;
    this.currentTransport = first.transport;
    this.name = first.conn.name;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    proxy.onRequest = (entry) => this.emit('request', entry);
    this.watch(first.conn);
  }

  get url(): string {
    return this.connection.url;
  }

  /** `grpc` or `websocket/<subprotocol>`. */
  get transport(): string {
    return this.currentTransport;
  }

  /** True while a connection is registered (the agent's /readyz). */
  get connected(): boolean {
    return this.live.size > 0 && !this.stopped;
  }

  /** Connects once; the first failure is the caller's (exit 1), later ones are retried. */
  static async start(init: AgentInit): Promise<Agent> {
    checkEdgeLink(init);
    const proxy = new OriginProxy({ origin: init.origin, logger: init.logger });
    try {
      let self: Agent | undefined;
      const first = await connect({ ...init, name: init.name ?? randomName() }, proxy, undefined, () => self?.onEdgeDrain());
      self = new Agent({ ...init, name: first.conn.name }, proxy, first);
      return self;
    } catch (err) {
      proxy.close();
      throw err;
    }
  }

  private watch(conn: Connection): void {
    this.live.add(conn);
    void conn.closed.then((reason) => {
      this.live.delete(conn);
      if (this.live.size === 0) this.allClosed?.();
      // While leaving, the edge ending a session is its word that every exchange it started is done.
      if (this.stopped || this.leaving || conn !== this.connection) return;
      void this.reconnect(reason, { sessionId: conn.sessionId, secret: conn.resumeSecret });
    });
  }

  private async reconnect(reason: Error, resume: ResumeTicket | undefined): Promise<void> {
    // One loop at a time (a drain and a lost connection can both ask).
    if (this.reconnecting) return;
    this.reconnecting = true;
    try {
      await this.reconnectLoop(reason, resume);
    } finally {
      this.reconnecting = false;
    }
  }

  private async reconnectLoop(reason: Error, resume: ResumeTicket | undefined): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const delay = backoffMs(attempt);
      this.emit('reconnecting', attempt === 0 ? reason.message : `attempt ${attempt}: ${reason.message}`, delay);
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      if (this.stopped) return;
      try {
        const next = await connect(this.init, this.proxy, resume, () => this.onEdgeDrain());
        if (this.stopped) {
          next.conn.close();
          return;
        }
        this.connection = next.conn;
        this.currentTransport = next.transport;
        this.rttMs = next.rttMs;
        this.watch(next.conn);
        this.emit('connected', next.conn.url, next.transport, true);
        return;
      } catch (err) {
        if (isFinal(err)) {
          this.stop(toError(err));
          return;
        }
        reason = toError(err);
      }
    }
  }

  /** The edge is draining: find another one now; the old connection finishes what it carries. */
  private onEdgeDrain(): void {
    // While leaving, the edge's Drain is its acknowledgement of ours: nothing new will come, and the
    // edge ends the session once its last exchange is done.
    if (this.leaving) return;
    const old = this.connection;
    this.init.logger.info('edge is draining: reconnecting');
    void this.reconnect(new AgentUnavailableError('edge is draining'), undefined).then(() => {
      if (this.connection !== old) old.close();
    });
  }

  /** Exchanges in flight, and (gRPC) idle ForwardHTTP streams waiting for the edge's next request. */
  stats(): { openExchanges: number; idleStreams: number } {
    let n = 0;
    let idle = 0;
    for (const c of this.live) {
      const st: { openExchanges: number; idleStreams?: number } = c.stats();
      n += st.openExchanges;
      idle += st.idleStreams ?? 0;
    }
    return { openExchanges: n, idleStreams: idle };
  }

  /**
   * Graceful stop (SIGTERM): leaves the pool (the edge sends nothing new), lets in-flight exchanges
   * finish for up to `graceMs`, then closes.
   */
  async leave(graceMs: number): Promise<void> {
    this.leaving = true;
    this.init.logger.info({ exchanges: this.stats().openExchanges, graceMs }, 'leaving');
    // The edge ends each session once the last exchange it started there is done (it alone knows of
    // one still on the wire); the grace period bounds the wait.
    const ended = new Promise<void>((resolve) => {
      this.allClosed = resolve;
      if (this.live.size === 0) resolve();
    });
    for (const c of this.live) c.leave();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await this.close();
  }

  /** Stops serving; in-flight exchanges are aborted. */
  async close(): Promise<void> {
    this.stop(new AbortError('agent closed'));
    await this.closed;
  }

  private stop(reason: Error): void {
    if (this.stopped) return;
    this.stopped = reason;
    this.wake?.();
    for (const c of this.live) c.close();
    this.proxy.close();
    this.resolveClosed(reason);
  }
}

/** Discovers the edge and connects over the transport negotiation picks. */
async function connect(init: AgentInit, proxy: OriginProxy, resume: ResumeTicket | undefined, onDrain: () => void): Promise<{ conn: Connection; transport: string; rttMs: number }> {
  const t0 = performance.now();
  const found = await discover(init.edge, { ca: init.edgeCa });
  const tls = init.edge.protocol === 'https:' ? { ca: init.edgeCa } : undefined;
  // One HTTP round trip to the edge (discovery), as seen at connect time.
  const rttMs = performance.now() - t0;
  const mode = init.transport ?? 'auto';
  const offered = Object.keys(found.transports).join(', ') || 'nothing';
  if (mode !== 'auto' && !found.transports[mode]) {
    throw new AgentUnavailableError(`the edge at ${init.edge.origin} does not offer ${mode} (it offers ${offered})`);
  }
  const name = init.name ?? randomName();
  const onExchange = proxy.serve.bind(proxy);
  const log = init.logger;
  if (found.transports.grpc && mode !== 'websocket') {
    try {
      const conn = await GrpcConnection.connect({
        address: `${init.edge.hostname}:${found.transports.grpc.port}`,
        name,
        version: AGENT_VERSION,
        logger: log,
        onExchange,
        token: init.token,
        domain: found.domain,
        tls,
        resume: resume?.sessionId,
        resumeSecret: resume?.secret,
        onDrain,
        timeoutMs: mode === 'auto' && found.transports.websocket ? GRPC_FALLBACK_TIMEOUT_MS : undefined,
      });
      return { conn, transport: 'grpc', rttMs };
    } catch (err) {
      // Refusals are final, and so is a certificate that fails (never try elsewhere around it); only an
      // unreachable gRPC port makes auto try WebSocket, which is TLS too for an https:// edge.
      if (mode === 'grpc' || !found.transports.websocket || err instanceof NameTakenError || err instanceof EdgeCertificateError || isFinal(err)) throw err;
      log.warn({ reason: toError(err).message }, 'gRPC unavailable, falling back to WebSocket');
    }
  }
  const path = found.transports.websocket?.path;
  if (!path) throw new AgentUnavailableError(`the edge at ${init.edge.origin} offers no transport this agent speaks (it offers ${offered})`);
  const wsUrl = new URL(path, init.edge);
  wsUrl.protocol = init.edge.protocol === 'https:' ? 'wss:' : 'ws:';
  const codec = init.wsCodec === 'json' ? WS_PROTOCOL_JSON : WS_PROTOCOL_PROTO;
  const conn = await WsConnection.connect({
    url: wsUrl.href,
    codec,
    name,
    version: AGENT_VERSION,
    windowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES,
    zeroMask: init.wsMask !== 'random',
    logger: log,
    onExchange,
    token: init.token,
    domain: found.domain,
    ca: init.edgeCa,
    resume: resume?.sessionId,
    resumeSecret: resume?.secret,
    onDrain,
  });
  return { conn, transport: `websocket/${codec}`, rttMs };
}
