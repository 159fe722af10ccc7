import type { HTTPChunk, ResetCode } from '../codec/http-chunk.js';

/**
 * One tunnelled HTTP exchange, whatever the transport. The local side writes its half through
 * `sink` and reads the peer's half from `source`.
 *
 * END and RESET are transport framing and never reach the application: `source` ends after the
 * peer's END and throws on its RESET or on transport loss; `sink` sends END when its input ends and
 * RESET when its input throws.
 */
export interface ExchangeDuplex {
  /** Exchange (and request) id. */
  readonly id: string;
  /** The peer's chunks: HEADERS, DATA*, [TRAILERS]. Pull-based: nothing is read until asked. */
  readonly source: AsyncIterable<HTTPChunk>;
  /** Sends chunks with backpressure; resolves once END is written. */
  sink(source: AsyncIterable<HTTPChunk>): Promise<void>;
  /** Aborts both directions now: the peer gets RESET, a pending read throws `err`. Idempotent. */
  abort(err: Error, code?: ResetCode): void;
  /** True when the peer's next chunk is already here, so reading it will not wait. */
  readonly buffered: boolean;
  /**
   * Everything the peer has left to send, through its END, when all of it is already here: taken at
   * once (without END), and `source` is finished as if read to its END. Undefined when any of it is
   * still to come; `source` then goes on untouched. Lets a reader of a small complete message skip
   * the promise per chunk of the async source. With `accept`, taken only when it says yes to them
   * (what it refuses is left to `source`, whose reader then fails the exchange the usual way).
   */
  takeRest?(accept?: (rest: readonly HTTPChunk[]) => boolean): HTTPChunk[] | undefined;
  /**
   * Sends `chunk`, this side's whole half folded into one chunk marked `end` (a small complete
   * response), at once when flow control lets it go without waiting, and finishes the write side as
   * sink() would. False when it cannot (nothing sent): the caller hands it to sink() as usual. Only
   * before sink() is called.
   */
  sendWhole?(chunk: HTTPChunk): boolean;
  /** Settles once both directions are finished; `error` is set if the exchange did not complete. */
  readonly closed: Promise<void>;
  readonly error: Error | undefined;
}

/** What a stream that carries exchanges one at a time is doing: waiting, carrying one, or gone. */
export type ChannelStatus = 'idle' | 'busy' | 'closed';

export interface BeginOptions {
  /** The request HEADERS already reached the peer another way (inside Open): skip them in sink(). */
  headSent?: boolean;
  /** The peer's request HEADERS that opened the exchange carried END (`end`): its request has no body. */
  headEnded?: boolean;
  /** The request HEADERS sent another way (headSent) carried END: sink() sends no END of its own. */
  headEndSent?: boolean;
}
