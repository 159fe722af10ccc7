import { ChunkKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { ExchangeResetError, toError, TransportClosedError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { CLOSE_GOING_AWAY } from './peer-endpoint.js';

/** True for the owner's refusal of a forwarded exchange: it does not hold the tunnel under that epoch. */
export function isMisdirected(err: unknown): boolean {
  return err instanceof ExchangeResetError && err.resetCode === ResetCode.MISDIRECTED;
}

/**
 * True when the owner did not take the exchange: it refused it (misdirected), or it closed the peer
 * connection with "going away" (done draining: it took nothing that went unanswered, peer-endpoint.ts).
 */
export function ownerDidNotTake(err: unknown): boolean {
  return isMisdirected(err) || (err instanceof TransportClosedError && err.closeCode === CLOSE_GOING_AWAY);
}

/** The request of a head-only exchange: its END goes out when this ends. */
async function* only(head: HTTPChunk): AsyncGenerator<HTTPChunk> {
  yield head;
}

/** The rest of an iterator already started, closing it when its reader stops early. */
async function* remaining<T>(it: AsyncIterator<T>, first: T): AsyncGenerator<T> {
  let done = false;
  try {
    yield first;
    for (;;) {
      const next = await it.next();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await it.return?.();
  }
}

/**
 * An exchange forwarded to the edge holding its tunnel, retried once on another owner when the first
 * answers MISDIRECTED (the lease moved under the forwarder) — but only while the retry is safe: no
 * answer came back and no request chunk beyond the head went out. The head is all that was sent, so
 * it is sent again (with the new owner's epoch: `reopen` builds it); a request with no body at all
 * gets its END again too. The request body is held back only while a retry is being opened.
 *
 * To its user it is one ExchangeDuplex: `source` yields the answer of whichever owner took it,
 * `closed`/`error` settle once, for the last attempt.
 */
export class ForwardedExchange implements ExchangeDuplex {
  readonly id: string;
  readonly source: AsyncIterable<HTTPChunk>;
  readonly closed: Promise<void>;
  error: Error | undefined;
  private current!: ExchangeDuplex;
  private reopen: ((cause: Error) => Promise<ExchangeDuplex>) | undefined;
  private reopening: Promise<ExchangeDuplex> | undefined;
  /** A request chunk beyond the head went to an owner: no retry from now on. */
  private handed = false;
  /** The request was the head alone (its END went out): a retry sends END again. */
  private headOnly = false;
  /** A chunk of the answer reached our reader: no retry from now on. */
  private answered = false;
  private aborted: { err: Error; code: ResetCode | undefined } | undefined;
  private settled = false;
  private resolveClosed!: () => void;

  /**
   * @param first the exchange opened on the owner the directory named.
   * @param head the request HEADERS (the sink skips them: the owner got them at open).
   * @param reopen opens the same request on the owner the directory names after a re-read (`cause`: why
   *   the last owner did not take it); undefined = no retry left.
   */
  constructor(
    first: ExchangeDuplex,
    private readonly head: HTTPChunk,
    reopen: ((cause: Error) => Promise<ExchangeDuplex>) | undefined,
  ) {
    this.id = first.id;
    this.reopen = reopen;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.watch(first);
    this.source = this.read();
  }

  get buffered(): boolean {
    return this.current.buffered;
  }

  private watch(inner: ExchangeDuplex): void {
    this.current = inner;
    // Registered before anyone awaits `inner.closed`: the retry decision is made before they resume.
    void inner.closed.then(() => this.innerClosed(inner));
  }

  private innerClosed(inner: ExchangeDuplex): void {
    if (inner !== this.current || this.settled) return;
    if (!inner.error) return this.settle(undefined);
    const reopen = this.reopen;
    if (!reopen || this.answered || this.handed || this.aborted || !ownerDidNotTake(inner.error)) return this.settle(inner.error);
    this.reopen = undefined;
    this.reopening = reopen(inner.error).then(
      (next) => {
        this.reopening = undefined;
        this.watch(next);
        if (this.aborted) next.abort(this.aborted.err, this.aborted.code);
        // Its failure shows in `source` and `closed`.
        else if (this.headOnly) next.sink(only(this.head)).catch(() => undefined);
        return next;
      },
      (err: unknown) => {
        this.reopening = undefined;
        this.settle(toError(err));
        throw err;
      },
    );
    this.reopening.catch(() => undefined);
  }

  private settle(err: Error | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.error = err;
    this.resolveClosed();
  }

  private async *read(): AsyncGenerator<HTTPChunk> {
    for (;;) {
      const inner = this.current;
      try {
        for await (const chunk of inner.source) {
          this.answered = true;
          yield chunk;
        }
        return;
      } catch (err) {
        await inner.closed;
        // The retry may already be open (its reopen settled first) or still opening; else this is the end.
        if (this.current !== inner) continue;
        if (!this.reopening) throw err;
        await this.reopening;
      }
    }
  }

  async sink(source: AsyncIterable<HTTPChunk>): Promise<void> {
    const it = source[Symbol.asyncIterator]();
    let next = await it.next();
    if (!next.done && next.value.kind === ChunkKind.HEADERS) next = await it.next();
    // A retry being opened takes the body: wait for the owner it goes to.
    while (this.reopening) await this.reopening.catch(() => undefined);
    if (this.settled && this.error) throw this.error;
    const target = this.current;
    if (next.done) {
      this.headOnly = true;
      try {
        await target.sink(only(this.head));
      } catch (err) {
        await target.closed;
        // Refused before its END mattered: the retry sends the request again.
        if (!this.reopening && this.current === target) throw err;
      }
      return;
    }
    this.handed = true;
    await target.sink(remaining(it, next.value));
  }

  abort(err: Error, code?: ResetCode): void {
    this.aborted ??= { err, code };
    this.current.abort(err, code);
  }
}
