import { ChunkKind, EXCHANGE_KIND_NAMES, ExchangeKind, exchangeKindOf, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { ExchangeResetError, IdleTimeoutError, toError, UnsupportedExchangeKindError } from '../errors.js';
import { logRequestLine, type Logger } from '../logger.js';
import type { ExchangeDuplex } from './exchange-duplex.js';
import type { ByteCounter } from './http-source.js';

/**
 * The request log entry, with the same field names on the edge and on the agent (as cloudflared's
 * proxy/logger.go fixes them): `bytesIn` is the request body, `bytesOut` the response body.
 */
export interface ExchangeRecord {
  id: string | undefined;
  method: string | undefined;
  path: string | undefined;
  status: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  /** Why the exchange failed, and the stable code of that error. */
  err?: string;
  code?: string;
}

export interface ExchangePipelineInit {
  /** The request id (X-Request-Id, else the exchange id). */
  id: string | undefined;
  method: string | undefined;
  path: string | undefined;
  logger: Logger;
  /** Fields of one side logged beside the shared ones (the edge's host and transport). */
  fields?: Record<string, unknown>;
}

/** The kinds of exchange an HTTP tunnel's agent serves (DESIGN.md §6.1); a TCP tunnel's serves `stream` (agent/tcp-origin.ts). */
export const SERVED_EXCHANGE_KINDS: readonly ExchangeKind[] = [ExchangeKind.HTTP];

/** A pipe stage (source → countData → sink) that adds the DATA bytes passing through to `counter`. */
export function countData(counter: ByteCounter): (source: AsyncIterable<HTTPChunk> | Iterable<HTTPChunk>) => AsyncGenerator<HTTPChunk> {
  return async function* counted(source: AsyncIterable<HTTPChunk> | Iterable<HTTPChunk>) {
    for await (const chunk of source) {
      if (chunk.kind === ChunkKind.DATA) counter.bytes += chunk.data!.byteLength;
      yield chunk;
    }
  };
}

/** `chunk` alone as a sink's source (a request that is its head alone): no generator, no pipe stage. */
export function oneChunk(chunk: HTTPChunk): AsyncIterable<HTTPChunk> {
  return {
    [Symbol.asyncIterator]() {
      let given = false;
      return {
        next: (): Promise<IteratorResult<HTTPChunk>> => {
          if (given) return Promise.resolve({ value: undefined, done: true });
          given = true;
          return Promise.resolve({ value: chunk, done: false });
        },
      };
    },
  };
}

/**
 * What both ends of one exchange share, whichever side and kind: the byte counters (fed by `countData`
 * stages in the two pipes), cancellation (`failed` aborts the moment the exchange fails, so a pipe
 * waiting on a peer that will never send stops at once), the idle timeout's action, the refusal of
 * kinds not served, and the one request log line. The edge's router and the agent's origin proxy
 * each build one per exchange and supply only their two pipes.
 *
 * Teardown order: the exchange is aborted first (RESET to the peer, pending reads throw), then
 * `failed` aborts (its listeners cut the local HTTP message: the upload stops, the origin request is
 * destroyed), then the owner releases its counts, and last `finish()` writes the log line.
 */
export class ExchangePipeline {
  /** Request body bytes. */
  readonly bytesIn: ByteCounter = { bytes: 0 };
  /** Response body bytes. */
  readonly bytesOut: ByteCounter = { bytes: 0 };
  /** The final response status, once known. */
  status = 0;
  private readonly init: ExchangePipelineInit;
  private readonly started = performance.now();
  /** The exchange's error once it failed. */
  private failure: Error | undefined;
  /** Teardown steps waiting for a failure (a plain list: an AbortSignal per exchange costs on every request). */
  private steps: Array<(err: Error) => void> = [];
  /** Made only when someone asks for `failed`. */
  private controller: AbortController | undefined;
  private exchange: ExchangeDuplex | undefined;

  constructor(init: ExchangePipelineInit) {
    this.init = init;
  }

  /** Aborts with the exchange's error as soon as the exchange fails (either side, any direction). */
  get failed(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.failure) this.controller.abort(this.failure);
    }
    return this.controller.signal;
  }

  /** Runs `step` with the exchange's error once it fails (at once if it has). A teardown step: keep it synchronous. */
  onFailed(step: (err: Error) => void): void {
    if (this.failure) step(this.failure);
    else this.steps.push(step);
  }

  /** Binds the open exchange: its failure aborts `failed`. Returns it for chaining. */
  attach(exchange: ExchangeDuplex): ExchangeDuplex {
    this.exchange = exchange;
    void exchange.closed.then(() => {
      if (exchange.error) this.fail(exchange.error);
    });
    return exchange;
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.controller?.abort(err);
    const steps = this.steps;
    this.steps = [];
    for (const step of steps) step(err);
  }

  /** Aborts the exchange (RESET `code` to the peer); `failed` follows once it has settled. Idempotent. */
  abort(err: Error, code: ResetCode): void {
    this.exchange?.abort(err, code);
  }

  /** Aborts the exchange (CANCEL to the peer) when `signal` aborts, now if it has; returns the unsubscribe. */
  cancelOn(signal: AbortSignal | undefined): () => void {
    if (!signal) return () => undefined;
    const onAbort = (): void => this.abort(toError(signal.reason), ResetCode.CANCEL);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  /** The action of an idle timer of `ms`: the exchange ends with IdleTimeoutError, the peer gets CANCEL. */
  idleAction(ms: number): () => void {
    return () => this.abort(new IdleTimeoutError(`no bytes either way for ${ms} ms`), ResetCode.CANCEL);
  }

  /**
   * False, after refusing the exchange with RESET, when `head` opens a kind not in `served`: the reason
   * reaches the peer's log (its RESET reason) and this side's (the error of `finish()`).
   */
  accepts(head: HTTPChunk, served: readonly ExchangeKind[] = SERVED_EXCHANGE_KINDS): boolean {
    const kind = exchangeKindOf(head);
    if (served.includes(kind)) return true;
    this.abort(new UnsupportedExchangeKindError(`exchange kind "${EXCHANGE_KIND_NAMES[kind]}" is not served here`), ResetCode.PROTOCOL_ERROR);
    return false;
  }

  /** Writes the request log line ('request', or 'request failed' with the error) and returns its entry. */
  finish(err: unknown): ExchangeRecord {
    const { id, method, path, fields, logger } = this.init;
    const ms = Math.round((performance.now() - this.started) * 10) / 10;
    const entry: ExchangeRecord = { id, method, path, status: this.status, bytesIn: this.bytesIn.bytes, bytesOut: this.bytesOut.bytes, ms };
    if (!err) {
      logRequestLine(logger, 'request', entry, fields ?? NO_FIELDS);
      return entry;
    }
    // The whole story stays here, beside the request id: a public error page only says which kind of failure.
    const e = toError(err);
    entry.err = e.message;
    entry.code = (e as { code?: string }).code;
    const cause = e.cause === undefined ? undefined : toError(e.cause).message;
    const peerReason = e instanceof ExchangeResetError ? e.peerReason : undefined;
    logRequestLine(logger, 'request failed', entry, fields ?? NO_FIELDS, { cause, peerReason });
    return entry;
  }
}

const NO_FIELDS: Record<string, unknown> = Object.freeze({});
