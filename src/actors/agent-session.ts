import type { HTTPChunk } from '../codec/http-chunk.js';
import { ResetCode } from '../codec/http-chunk.js';
import {
  AbortError,
  AgentBusyError,
  AgentTimeoutError,
  AgentUnavailableError,
  MailboxFullError,
  toError,
  type JettyError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import type { BeginOptions, ChannelStatus, ExchangeDuplex } from '../streams/exchange-duplex.js';
import { Actor } from './actor.js';

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

/** The agent's control channel, as the session needs it (gRPC Register stream or WebSocket). */
export interface SessionControl {
  /**
   * Transports that multiplex on one connection (WebSocket) start an exchange directly: the request
   * HEADERS go out now and the returned duplex's sink skips them. Without it, the session uses its
   * pool of agent-opened streams and sendOpen.
   */
  openDirect?(head: HTTPChunk): ExchangeDuplex;
  /** Ask the agent to open a stream for this exchange; the request HEADERS ride along. */
  sendOpen(head: HTTPChunk): void;
  /** The public side of this exchange went away: abort the origin request. */
  sendCancel(exchangeId: string, code: ResetCode): void;
  /** Tell the agent this edge is draining: finish what is in flight, reconnect elsewhere. */
  sendDrain?(): void;
  /** End the control channel (the session is over). */
  close(err: Error): void;
}

/** A stream the agent opened that can carry exchanges one at a time. */
export interface ExchangeStream {
  readonly status: ChannelStatus;
  begin(id: string, options?: BeginOptions): ExchangeDuplex;
  close(err: Error | undefined): void;
}

export interface AgentSessionInit {
  id: string;
  name: string;
  transport: string;
  control: SessionControl;
  logger: Logger;
  /** Cap on exchanges in flight; default DEFAULT_MAX_EXCHANGES. */
  maxExchanges?: number;
  /** Wait for a stream after Open, in ms; default DEFAULT_OPEN_TIMEOUT_MS. */
  openTimeoutMs?: number;
  /** Idle streams kept; default DEFAULT_MAX_IDLE_STREAMS. */
  maxIdleStreams?: number;
  /** Exchanges waiting for a slot at the cap; default DEFAULT_MAX_QUEUED_EXCHANGES. */
  maxQueuedExchanges?: number;
}

export interface OpenExchangeOptions {
  /** The public client went away: stop waiting for a slot (the promise rejects with its reason). */
  signal?: AbortSignal;
}

interface Queued {
  head: HTTPChunk;
  resolve: Pending['resolve'];
  reject: Pending['reject'];
  signal: AbortSignal | undefined;
  timer: NodeJS.Timeout;
}

interface Pending {
  resolve: (exchange: ExchangeDuplex) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Messages of the AgentSession actor. */
export type SessionMessage =
  | { type: 'OpenExchange'; head: HTTPChunk; resolve: Pending['resolve']; reject: Pending['reject']; signal: AbortSignal | undefined }
  | { type: 'StreamIdle'; stream: ExchangeStream }
  | { type: 'StreamAttached'; exchangeId: string; stream: ExchangeStream }
  | { type: 'OpenTimeout'; exchangeId: string }
  | { type: 'QueueTimeout'; entry: Queued }
  | { type: 'ExchangeClosed'; exchange: ExchangeDuplex }
  | { type: 'Drain' };

export interface SessionStats {
  openExchanges: number;
  idleStreams: number;
  pendingOpens: number;
}

/**
 * One connected agent. Owns its idle streams, the exchanges in flight and the Opens waiting for a
 * stream. Bytes never pass through the mailbox: it carries lifecycle only.
 *
 * Teardown order (cleanup): pending Opens rejected (502) → exchanges aborted → idle streams closed →
 * control channel closed.
 */
export class AgentSession extends Actor<SessionMessage> {
  readonly id: string;
  readonly name: string;
  readonly transport: string;
  /** Set by drain(): the session takes no new exchanges. */
  draining = false;
  private readonly control: SessionControl;
  private readonly log: Logger;
  private readonly maxExchanges: number;
  private readonly openTimeoutMs: number;
  private readonly maxIdleStreams: number;
  private readonly maxQueued: number;
  private readonly queued: Queued[] = [];
  private readonly idle: ExchangeStream[] = [];
  private readonly exchanges = new Set<ExchangeDuplex>();
  private readonly pending = new Map<string, Pending>();

  constructor(init: AgentSessionInit) {
    super();
    this.id = init.id;
    this.name = init.name;
    this.transport = init.transport;
    this.control = init.control;
    this.log = init.logger;
    this.maxExchanges = init.maxExchanges ?? DEFAULT_MAX_EXCHANGES;
    this.openTimeoutMs = init.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    this.maxIdleStreams = init.maxIdleStreams ?? DEFAULT_MAX_IDLE_STREAMS;
    this.maxQueued = init.maxQueuedExchanges ?? DEFAULT_MAX_QUEUED_EXCHANGES;
  }

  /** Exchanges in flight or waiting for a stream (the pool picks the lowest). */
  get load(): number {
    return this.exchanges.size + this.pending.size + this.queued.length;
  }

  /**
   * Takes no new exchanges and tells the agent; in-flight ones go on. The notice goes through the
   * mailbox, so every exchange looked up before it reaches the agent first.
   */
  drain(): void {
    if (this.draining || this.stopped) return;
    this.draining = true;
    this.sendSafe({ type: 'Drain' });
  }

  stats(): SessionStats {
    return { openExchanges: this.exchanges.size, idleStreams: this.idle.length, pendingOpens: this.pending.size + this.queued.length };
  }

  /**
   * Starts an exchange whose request begins with `head` (request HEADERS with exchangeId). Resolves
   * with the duplex once a stream carries it; at the cap it waits for a slot (bounded queue, open
   * timeout). Rejects with AgentBusyError, AgentTimeoutError, AgentUnavailableError or the signal's reason.
   */
  openExchange(head: HTTPChunk, options?: OpenExchangeOptions): Promise<ExchangeDuplex> {
    if (this.stopped) return Promise.reject(new AgentUnavailableError('agent session closed'));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<ExchangeDuplex>((resolve, reject) => {
      const onAbort = (): void => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (exchange: ExchangeDuplex): void => {
        signal?.removeEventListener('abort', onAbort);
        // The client left while the exchange was being set up: nobody will read it.
        if (signal?.aborted) exchange.abort(toError(signal.reason), ResetCode.CANCEL);
        else resolve(exchange);
      };
      const fail = (err: Error): void => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      try {
        this.send({ type: 'OpenExchange', head, resolve: settle, reject: fail, signal });
      } catch (err) {
        fail(err instanceof MailboxFullError ? new AgentBusyError('agent session overloaded', { cause: err }) : toError(err));
      }
    });
  }

  /** A stream is free to carry the next exchange. */
  offerStream(stream: ExchangeStream): void {
    this.sendOrClose(stream, { type: 'StreamIdle', stream });
  }

  /** The agent opened `stream` to answer the Open of `exchangeId`. */
  attachStream(exchangeId: string, stream: ExchangeStream): void {
    this.sendOrClose(stream, { type: 'StreamAttached', exchangeId, stream });
  }

  private sendOrClose(stream: ExchangeStream, msg: SessionMessage): void {
    try {
      this.send(msg);
    } catch (err) {
      stream.close(err as JettyError);
    }
  }

  protected handle(msg: SessionMessage): void {
    switch (msg.type) {
      case 'OpenExchange':
        return this.onOpen(msg);
      case 'StreamIdle':
        return this.onIdle(msg.stream);
      case 'StreamAttached':
        return this.onAttached(msg.exchangeId, msg.stream);
      case 'OpenTimeout': {
        const p = this.pending.get(msg.exchangeId);
        if (!p) return;
        this.pending.delete(msg.exchangeId);
        p.reject(new AgentTimeoutError(`agent did not take exchange within ${this.openTimeoutMs} ms`));
        this.control.sendCancel(msg.exchangeId, ResetCode.CANCEL);
        return this.startQueued();
      }
      case 'QueueTimeout': {
        const i = this.queued.indexOf(msg.entry);
        if (i < 0) return;
        this.queued.splice(i, 1);
        msg.entry.reject(new AgentBusyError(`agent had ${this.maxExchanges} exchanges in flight for ${this.openTimeoutMs} ms`));
        return;
      }
      case 'ExchangeClosed':
        this.exchanges.delete(msg.exchange);
        if (msg.exchange.error) this.control.sendCancel(msg.exchange.id, ResetCode.CANCEL);
        return this.startQueued();
      case 'Drain':
        this.control.sendDrain?.();
        return;
    }
  }

  private onOpen(msg: Extract<SessionMessage, { type: 'OpenExchange' }>): void {
    if (this.exchanges.size + this.pending.size < this.maxExchanges && this.queued.length === 0) {
      this.start(msg.head, msg.resolve, msg.reject);
      return;
    }
    if (this.queued.length >= this.maxQueued) {
      msg.reject(new AgentBusyError(`agent has ${this.maxExchanges} exchanges in flight and ${this.maxQueued} waiting`));
      return;
    }
    const entry: Queued = { head: msg.head, resolve: msg.resolve, reject: msg.reject, signal: msg.signal, timer: undefined as never };
    entry.timer = setTimeout(() => this.sendSafe({ type: 'QueueTimeout', entry }), this.openTimeoutMs);
    this.queued.push(entry);
  }

  /** Starts waiting exchanges while there are free slots; ones whose client left are dropped. */
  private startQueued(): void {
    while (this.queued.length > 0 && this.exchanges.size + this.pending.size < this.maxExchanges) {
      const entry = this.queued.shift()!;
      clearTimeout(entry.timer);
      if (entry.signal?.aborted) entry.reject(entry.signal.reason);
      else this.start(entry.head, entry.resolve, entry.reject);
    }
  }

  private start(head: HTTPChunk, resolve: Pending['resolve'], reject: Pending['reject']): void {
    const id = head.exchangeId ?? '';
    if (this.control.openDirect) {
      try {
        resolve(this.track(this.control.openDirect(head)));
      } catch (err) {
        reject(new AgentUnavailableError('agent connection closed', { cause: err }));
      }
      return;
    }
    let stream: ExchangeStream | undefined;
    while ((stream = this.idle.pop()) !== undefined) {
      if (stream.status === 'idle') {
        resolve(this.track(stream.begin(id)));
        return;
      }
    }
    const timer = setTimeout(() => this.sendSafe({ type: 'OpenTimeout', exchangeId: id }), this.openTimeoutMs);
    this.pending.set(id, { resolve, reject, timer });
    this.control.sendOpen(head);
  }

  private onIdle(stream: ExchangeStream): void {
    if (stream.status !== 'idle') return;
    if (this.idle.length >= this.maxIdleStreams) {
      stream.close(undefined);
      return;
    }
    this.idle.push(stream);
  }

  private onAttached(exchangeId: string, stream: ExchangeStream): void {
    const p = this.pending.get(exchangeId);
    if (!p) {
      // The Open timed out or its client left: the agent started for nothing; ending the stream
      // tells it to abort the origin request.
      stream.close(new AbortError(`no exchange ${exchangeId} waiting`));
      return;
    }
    this.pending.delete(exchangeId);
    clearTimeout(p.timer);
    p.resolve(this.track(stream.begin(exchangeId, { headSent: true })));
  }

  private track(exchange: ExchangeDuplex): ExchangeDuplex {
    this.exchanges.add(exchange);
    void exchange.closed.then(() => this.sendSafe({ type: 'ExchangeClosed', exchange }));
    return exchange;
  }

  private sendSafe(msg: SessionMessage): void {
    if (this.stopped) {
      if (msg.type === 'ExchangeClosed') this.exchanges.delete(msg.exchange);
      return;
    }
    try {
      this.send(msg);
    } catch (err) {
      this.log.warn({ err, name: this.name }, 'session mailbox refused a lifecycle message');
      this.abort(err as Error);
    }
  }

  protected dropped(msg: SessionMessage, err: Error): void {
    const reason = new AgentUnavailableError('agent session closed', { cause: err });
    if (msg.type === 'OpenExchange') msg.reject(reason);
    else if (msg.type === 'StreamIdle' || msg.type === 'StreamAttached') msg.stream.close(reason);
    else if (msg.type === 'ExchangeClosed') this.exchanges.delete(msg.exchange);
  }

  protected cleanup(err: Error): void {
    const reason = new AgentUnavailableError('agent session closed', { cause: err });
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
    this.control.close(err);
  }
}
