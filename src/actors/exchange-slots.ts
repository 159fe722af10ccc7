import type { HTTPChunk } from '../codec/http-chunk.js';
import { ResetCode } from '../codec/http-chunk.js';
import { AbortError, AgentBusyError, AgentTimeoutError, AgentUnavailableError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangeStream } from './control-channel.js';

/** Default cap on exchanges in flight per agent; bounds the edge's memory per agent. */
export const DEFAULT_MAX_EXCHANGES = 128;
/** How long the edge waits for the agent to open a stream for an Open before answering 504. */
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
/** Idle streams kept per session; extra ones are closed when they come back. */
export const DEFAULT_MAX_IDLE_STREAMS = 64;
/**
 * Exchanges that wait for a free slot when the agent is at its cap (beyond: 503 agent busy). A
 * waiting exchange holds only its public request head: the body is not read until it starts.
 */
export const DEFAULT_MAX_QUEUED_EXCHANGES = 1024;

/** An exchange asked for, and how to answer its caller. */
export interface OpenRequest {
  head: HTTPChunk;
  resolve: (exchange: ExchangeDuplex) => void;
  reject: (err: Error) => void;
  signal: AbortSignal | undefined;
}

/** An exchange waiting for a slot. */
export interface Queued extends OpenRequest {
  timer: NodeJS.Timeout;
}

interface Pending {
  resolve: OpenRequest['resolve'];
  reject: OpenRequest['reject'];
  timer: NodeJS.Timeout;
  /** The Open's head carried the request's END: the stream the agent opens gets none. */
  endSent: boolean;
}

/** What the slots need from their session; every callback runs inside the session's handler. */
export interface ExchangeSlotsInit {
  maxExchanges?: number;
  openTimeoutMs?: number;
  maxIdleStreams?: number;
  maxQueuedExchanges?: number;
  /** Multiplexing transports start an exchange themselves (ControlChannel.openDirect). */
  openDirect?: (head: HTTPChunk) => ExchangeDuplex;
  /** Ask the agent to open a stream for this exchange (Open); true when the Open's head carried its END. */
  sendOpen: (head: HTTPChunk) => boolean;
  /** The public side of this exchange went away (Cancel). */
  sendCancel: (exchangeId: string, code: ResetCode) => void;
  /** Timers and closed exchanges come back through the session's mailbox. */
  openTimedOut: (exchangeId: string) => void;
  queueTimedOut: (entry: Queued) => void;
  exchangeClosed: (exchange: ExchangeDuplex) => void;
}

/**
 * The exchanges of one session: the ones in flight, the Opens waiting for a stream, the idle streams
 * and the exchanges waiting for a slot. Plain state, owned by the AgentSession actor and changed only
 * from its handler (never from another file), so it needs no locks.
 */
export class ExchangeSlots {
  readonly maxExchanges: number;
  readonly openTimeoutMs: number;
  private readonly maxIdleStreams: number;
  private readonly maxQueued: number;
  private readonly queued: Queued[] = [];
  private readonly idle: ExchangeStream[] = [];
  private readonly exchanges = new Set<ExchangeDuplex>();
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly init: ExchangeSlotsInit) {
    this.maxExchanges = init.maxExchanges ?? DEFAULT_MAX_EXCHANGES;
    this.openTimeoutMs = init.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    this.maxIdleStreams = init.maxIdleStreams ?? DEFAULT_MAX_IDLE_STREAMS;
    this.maxQueued = init.maxQueuedExchanges ?? DEFAULT_MAX_QUEUED_EXCHANGES;
  }

  get load(): number {
    return this.exchanges.size + this.pending.size + this.queued.length;
  }

  stats(): { openExchanges: number; idleStreams: number; pendingOpens: number } {
    return { openExchanges: this.exchanges.size, idleStreams: this.idle.length, pendingOpens: this.pending.size + this.queued.length };
  }

  private get hasSlot(): boolean {
    return this.exchanges.size + this.pending.size < this.maxExchanges;
  }

  /** Starts `req` now, or queues it (bounded, timed) while `hold` (not registered yet) or at the cap. */
  open(req: OpenRequest, hold: boolean): void {
    if (!hold && this.hasSlot && this.queued.length === 0) return this.start(req);
    if (this.queued.length >= this.maxQueued) {
      req.reject(new AgentBusyError(`agent has ${this.maxExchanges} exchanges in flight and ${this.maxQueued} waiting`));
      return;
    }
    const entry: Queued = { ...req, timer: undefined as never };
    entry.timer = setTimeout(() => this.init.queueTimedOut(entry), this.openTimeoutMs);
    this.queued.push(entry);
  }

  /**
   * Starts `head` at once when a slot is free and nobody waits for one: on a multiplexing transport,
   * or on an idle stream (gRPC's pool) as start() would take it. Undefined when it would have to wait,
   * for a slot or for the agent to open a stream, or the transport refuses (open() then reports why).
   */
  openNow(head: HTTPChunk): ExchangeDuplex | undefined {
    if (!this.hasSlot || this.queued.length > 0) return undefined;
    try {
      return this.startNow(head);
    } catch {
      return undefined;
    }
  }

  /**
   * `head`'s exchange started now, on the multiplexing transport or an idle stream; undefined when it
   * needs an Open to the agent. Throws what the transport's openDirect throws (its connection closed).
   */
  private startNow(head: HTTPChunk): ExchangeDuplex | undefined {
    if (this.init.openDirect) return this.track(this.init.openDirect(head));
    let stream: ExchangeStream | undefined;
    while ((stream = this.idle.pop()) !== undefined) {
      if (stream.status === 'idle') return this.track(stream.begin(head.exchangeId ?? ''));
    }
    return undefined;
  }

  /** Starts waiting exchanges while there are free slots; ones whose client left are dropped. */
  startQueued(): void {
    while (this.queued.length > 0 && this.hasSlot) {
      const entry = this.queued.shift()!;
      clearTimeout(entry.timer);
      if (entry.signal?.aborted) entry.reject(entry.signal.reason);
      else this.start(entry);
    }
  }

  private start(req: OpenRequest): void {
    const id = req.head.exchangeId ?? '';
    let exchange: ExchangeDuplex | undefined;
    try {
      exchange = this.startNow(req.head);
    } catch (err) {
      req.reject(new AgentUnavailableError('agent connection closed', { cause: err }));
      return;
    }
    if (exchange) return req.resolve(exchange);
    const timer = setTimeout(() => this.init.openTimedOut(id), this.openTimeoutMs);
    const entry: Pending = { resolve: req.resolve, reject: req.reject, timer, endSent: false };
    this.pending.set(id, entry);
    entry.endSent = this.init.sendOpen(req.head);
  }

  openTimeout(exchangeId: string): void {
    const p = this.pending.get(exchangeId);
    if (!p) return;
    this.pending.delete(exchangeId);
    p.reject(new AgentTimeoutError(`agent did not take exchange within ${this.openTimeoutMs} ms`));
    this.init.sendCancel(exchangeId, ResetCode.CANCEL);
    this.startQueued();
  }

  queueTimeout(entry: Queued): void {
    const i = this.queued.indexOf(entry);
    if (i < 0) return;
    this.queued.splice(i, 1);
    entry.reject(new AgentBusyError(`agent had ${this.maxExchanges} exchanges in flight for ${this.openTimeoutMs} ms`));
  }

  closedExchange(exchange: ExchangeDuplex): void {
    this.exchanges.delete(exchange);
    if (exchange.error) this.init.sendCancel(exchange.id, ResetCode.CANCEL);
    this.startQueued();
  }

  /** Forgets an exchange without starting more (the session stopped). */
  forget(exchange: ExchangeDuplex): void {
    this.exchanges.delete(exchange);
  }

  idleStream(stream: ExchangeStream): void {
    if (stream.status !== 'idle') return;
    if (this.idle.length >= this.maxIdleStreams) return stream.close(undefined);
    this.idle.push(stream);
  }

  attached(exchangeId: string, stream: ExchangeStream): void {
    const p = this.pending.get(exchangeId);
    if (!p) {
      // The Open timed out or its client left: the agent started for nothing; ending the stream
      // tells it to abort the origin request.
      stream.close(new AbortError(`no exchange ${exchangeId} waiting`));
      return;
    }
    this.pending.delete(exchangeId);
    clearTimeout(p.timer);
    p.resolve(this.track(stream.begin(exchangeId, { headSent: true, headEndSent: p.endSent })));
  }

  private track(exchange: ExchangeDuplex): ExchangeDuplex {
    this.exchanges.add(exchange);
    void exchange.closed.then(() => this.init.exchangeClosed(exchange));
    return exchange;
  }

  /** Teardown: pending Opens and waiting exchanges rejected → exchanges aborted → idle streams closed. */
  abortAll(reason: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.pending.clear();
    for (const entry of this.queued) {
      clearTimeout(entry.timer);
      entry.reject(reason);
    }
    this.queued.length = 0;
    for (const exchange of this.exchanges) exchange.abort(reason);
    this.exchanges.clear();
    for (const stream of this.idle) stream.close(reason);
    this.idle.length = 0;
  }
}
