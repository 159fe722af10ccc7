import type { Duplex } from 'node:stream';
import { ChunkKind, type HTTPChunk } from '../codec/http-chunk.js';
import { ProtocolError, TransportClosedError } from '../errors.js';
import { ChannelExchange } from './grpc-channel-exchange.js';
import type { BeginOptions, ChannelStatus, ExchangeDuplex } from './exchange-duplex.js';
import { GRPC_STREAM_WINDOW_BYTES } from './grpc-service.js';
import { ReadableReader } from './readable-reader.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';

/**
 * objectMode high-water mark of a grpc-js call, in messages, on each side (limitCallQueues). grpc-js
 * builds its calls with Node's default of 16: a paused public reader then held 16 received messages in
 * the edge's call on top of the stream window (a heap snapshot of 32 paused gRPC readers: 38 MiB in the
 * calls' read buffers, 32 MiB in the HTTP/2 streams'), and a download's agent queued 16 messages per
 * call, long enough for most of them to outlive two scavenges and wait for a full collection. Two keeps
 * one message queued behind the one being sent, so the stream never waits for the writer.
 */
export const CALL_HIGH_WATER_MARK_CHUNKS = 2;
/**
 * Most body bytes one exchange can have sent but not yet consumed: the receiver's stream window
 * plus a call's objectMode buffer of full chunks on each side (DESIGN.md §3 budget).
 */
export const EXCHANGE_BUFFER_BOUND_BYTES = GRPC_STREAM_WINDOW_BYTES + 2 * CALL_HIGH_WATER_MARK_CHUNKS * MAX_CHUNK_DATA_BYTES;

/**
 * Sets both high-water marks of a grpc-js `call` to `messages`. grpc-js passes no highWaterMark when it
 * builds a call and Node has no setter for a built stream, so this sets the field of each side's state
 * that Node reads on every push() and write(); the public readableHighWaterMark and
 * writableHighWaterMark read it back (test/streams/grpc-exchange-channel checks them on real calls).
 */
function limitCallQueues(call: Duplex, messages: number): void {
  const states = call as unknown as { _readableState?: { highWaterMark: number }; _writableState?: { highWaterMark: number } };
  if (states._readableState) states._readableState.highWaterMark = messages;
  if (states._writableState) states._writableState.highWaterMark = messages;
}

export interface GrpcExchangeChannelInit {
  /** A grpc-js duplex call of HTTPChunk, client or server side (objectMode). */
  call: Duplex;
  /**
   * Ends the call for good after a RESET or a local failure. The agent half-closes (then cancels if
   * the edge does not finish the call); the edge ends with a status, since a grpc-js server call has
   * no cancel.
   */
  terminate: (call: Duplex) => void;
  /**
   * The agent's side: an exchange that failed locally after its END went out keeps the stream (the
   * edge may already have started the next exchange on it); its late chunks are dropped by number.
   * The edge never sets this: it alone decides reuse, and it retires a stream after any failure.
   */
  keepAfterLateFailure?: boolean;
  /** An exchange finished cleanly both ways: the channel can carry another. */
  onIdle?: (channel: GrpcExchangeChannel) => void;
  /**
   * The edge's side: once an exchange is done the idle stream is read (watchIdle), so nothing the peer
   * sends on it waits unread. The agent never sets this: it reads its idle streams for the next request.
   */
  readWhileIdle?: boolean;
  /** The call is over; the channel never carries another exchange. */
  onClose?: (channel: GrpcExchangeChannel, err: Error | undefined) => void;
  /**
   * The peer reads folded chunks (Registered.folded_chunks): the agent sets it for an edge that said
   * so, and its exchanges then send a small complete response as one message. Default false.
   */
  peerReadsFolded?: boolean;
}

/**
 * A ForwardHTTP call seen as a sequence of exchanges, one at a time, numbered 1, 2, 3, … on both
 * sides; every chunk carries its exchange's number (`seq`). HTTP/2 flow control then applies per
 * exchange: a stalled exchange fills its own stream window and no other.
 *
 * Reuse rules (the edge and the agent may disagree for a moment about whether the stream is idle):
 * - the edge starts exchange N+1 only after N ended cleanly on its side (END sent and received);
 * - a chunk numbered below the current exchange is a late one (a RESET sent after its END) and is
 *   dropped; one numbered above is a protocol error;
 * - after a failure the edge retires the stream; the agent retires it too unless its END had gone out
 *   (then the edge may be using the stream already: it sends RESET N and keeps reading).
 *
 * Bound: what a stalled exchange holds is EXCHANGE_BUFFER_BOUND_BYTES (the stream's HTTP/2 window
 * plus the call's objectMode high-water mark on each side).
 *
 * Teardown order: exchange.abort → RESET written (best effort) → call terminated → reader
 * interrupted (pending read throws) → listeners released → onClose.
 */
export class GrpcExchangeChannel {
  status: ChannelStatus = 'idle';
  /** Number of the current (or last) exchange on this stream. */
  private seq = 0;
  private readonly call: Duplex;
  private readonly reader: ReadableReader<HTTPChunk>;
  private readonly init: GrpcExchangeChannelInit;
  private current: ChannelExchange | undefined;
  /** A read started while nobody consumed (after the peer's END); the next reader takes it over. */
  private lookahead: Promise<HTTPChunk | null> | undefined;
  private drainWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private closeError: Error | undefined;

  private readonly onDrain = (): void => {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.resolve();
  };
  private readonly onCallError = (err: Error): void => {
    this.close(new TransportClosedError('exchange stream failed', { cause: err }));
  };
  private readonly onCallClose = (): void => {
    this.close(new TransportClosedError('exchange stream closed'));
  };
  private readonly onCancelled = (): void => {
    this.close(new TransportClosedError('exchange stream cancelled by peer'));
  };
  private readonly onFinish = (): void => {
    // Our side ended the call; a channel nobody can write to carries nothing more.
    if (this.status !== 'closed') this.close(undefined);
  };
  private readonly onEnd = (): void => {
    // The peer will send nothing more: an idle stream is over (a busy one sees it as its reader's end).
    if (this.status === 'idle') this.close(undefined);
  };

  constructor(init: GrpcExchangeChannelInit) {
    this.init = init;
    this.call = init.call;
    limitCallQueues(this.call, CALL_HIGH_WATER_MARK_CHUNKS);
    this.reader = new ReadableReader<HTTPChunk>(this.call);
    this.call.on('drain', this.onDrain);
    this.call.on('error', this.onCallError);
    this.call.on('close', this.onCallClose);
    this.call.on('cancelled', this.onCancelled);
    this.call.on('finish', this.onFinish);
    this.call.on('end', this.onEnd);
  }

  /**
   * The peer's next exchange while idle (the agent waits here for the next request HEADERS); late
   * chunks of finished exchanges are dropped. Null when the stream ended.
   */
  async next(): Promise<HTTPChunk | null> {
    const chunk = await this.readFor(this.seq + 1);
    if (chunk !== null && (chunk.kind !== ChunkKind.HEADERS || !chunk.method)) {
      throw new ProtocolError(`exchange ${this.seq + 1} must start with request HEADERS`);
    }
    return chunk;
  }

  /** Starts the next exchange on an idle channel. */
  begin(id: string, options?: BeginOptions): ExchangeDuplex {
    if (this.status !== 'idle') throw new TransportClosedError(`channel is ${this.status}`);
    this.status = 'busy';
    this.current = new ChannelExchange(this, id, ++this.seq, options);
    return this.current;
  }

  /** Ends the channel; an exchange in flight fails with `err`. Idempotent. */
  close(err: Error | undefined): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    const failure = err ?? new TransportClosedError('exchange stream closed');
    this.closeError = failure;
    this.reader.interrupt(failure);
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.reject(failure);
    this.current?.fail(failure, undefined);
    this.current = undefined;
    this.reader.release();
    this.call.off('drain', this.onDrain);
    this.call.off('close', this.onCallClose);
    this.call.off('cancelled', this.onCancelled);
    this.call.off('finish', this.onFinish);
    this.call.off('end', this.onEnd);
    // Keep an error listener: a late 'error' on an unobserved call must not crash the process.
    this.call.off('error', this.onCallError);
    this.call.on('error', noop);
    if (!this.call.destroyed) this.init.terminate(this.call);
    this.init.onClose?.(this, err);
  }

  /** @internal the next chunk of exchange `seq`, dropping late ones; null at the stream's end. */
  async readFor(seq: number): Promise<HTTPChunk | null> {
    for (;;) {
      const pending = this.lookahead;
      this.lookahead = undefined;
      const chunk = await (pending ?? this.reader.read());
      if (chunk === null) return null;
      const n = chunk.seq ?? 0;
      if (n === seq) return chunk;
      if (n > seq) throw new ProtocolError(`chunk of exchange ${n} while exchange ${seq} is current`);
    }
  }

  /**
   * @internal The peer sent END while this side still writes: the only chunk that may follow is a
   * RESET of the same exchange (the peer failed after its END). Watch for it without consuming
   * anything else: a chunk read here that belongs to a later reader is handed over to it.
   */
  watchAfterEnd(exchange: ChannelExchange): void {
    if (this.lookahead || this.status === 'closed') return;
    const pending = this.reader.read();
    this.lookahead = pending;
    pending.then(
      (chunk) => {
        if (this.lookahead !== pending || this.current !== exchange || exchange.isSettled) return;
        this.lookahead = undefined;
        if (chunk === null) {
          this.close(new TransportClosedError('peer ended the stream while its exchange was being written'));
        } else if ((chunk.seq ?? 0) < exchange.seq) {
          this.watchAfterEnd(exchange);
        } else if (chunk.kind === ChunkKind.RESET && chunk.seq === exchange.seq) {
          exchange.resetAfterEnd(chunk);
        } else {
          this.close(new ProtocolError(`chunk kind ${chunk.kind} after END`));
        }
      },
      () => undefined,
    );
  }

  /**
   * Reads the stream while it is idle (the edge's side). Only the edge starts exchanges, so the peer may
   * send nothing here but late chunks of finished ones (dropped): a chunk of a later exchange is a
   * protocol error and closes the stream. Unread, such chunks piled up in the call's buffers and HTTP/2
   * windows of every idle stream. The next exchange takes over a read in progress.
   */
  watchIdle(): void {
    if (this.status !== 'idle') return;
    // A read watchAfterEnd started for the exchange just done is carried on.
    const pending = this.lookahead ?? this.reader.read();
    this.lookahead = pending;
    pending.then(
      (chunk) => {
        if (this.lookahead !== pending || this.status !== 'idle') return;
        this.lookahead = undefined;
        if (chunk === null) this.close(undefined);
        else if ((chunk.seq ?? 0) <= this.seq) this.watchIdle();
        else this.close(new ProtocolError(`chunk of exchange ${chunk.seq} on an idle stream`));
      },
      () => undefined,
    );
  }

  /** @internal */
  async write(chunk: HTTPChunk): Promise<void> {
    if (this.status === 'closed') throw this.closeError ?? new TransportClosedError('channel closed');
    if (this.call.write(chunk, this.onWritten)) return;
    await new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * A message went out: a writer waiting at the high-water mark goes on as soon as the call is below it
   * again, not at 'drain' (only once the whole queue is out: the stream would idle while the writer
   * fetched its next chunk, once per CALL_HIGH_WATER_MARK_CHUNKS messages).
   */
  private readonly onWritten = (): void => {
    if (this.drainWaiters.length > 0 && this.call.writableLength < CALL_HIGH_WATER_MARK_CHUNKS) this.onDrain();
  };

  /**
   * @internal writes `chunk` now unless the call's buffer is already at its high-water mark (a writer
   * there waits); false, with nothing written, if it is.
   */
  tryWrite(chunk: HTTPChunk): boolean {
    if (this.status === 'closed' || !this.call.writable || this.call.writableLength >= CALL_HIGH_WATER_MARK_CHUNKS) return false;
    this.call.write(chunk, this.onWritten);
    return true;
  }

  /** @internal best-effort write that never waits (RESET before teardown). */
  writeNow(chunk: HTTPChunk): void {
    if (this.status !== 'closed' && this.call.writable) this.call.write(chunk);
  }

  /** @internal whether the peer reads folded chunks (GrpcExchangeChannelInit.peerReadsFolded). */
  get peerReadsFolded(): boolean {
    return this.init.peerReadsFolded === true;
  }

  /** @internal chunks already received and not yet read. */
  get bufferedChunks(): number {
    return this.call.readableLength;
  }

  /** @internal the exchange finished cleanly both ways. */
  exchangeDone(exchange: ChannelExchange): void {
    if (this.current !== exchange || this.status !== 'busy') return;
    this.current = undefined;
    this.status = 'idle';
    this.init.onIdle?.(this);
    if (this.init.readWhileIdle) this.watchIdle();
  }

  /** @internal the exchange failed; `lateLocal`: it failed here after its END went out. */
  exchangeFailed(exchange: ChannelExchange, err: Error, lateLocal: boolean): void {
    if (this.current !== exchange) return;
    if (lateLocal && this.init.keepAfterLateFailure) {
      // Its remaining chunks (up to the peer's END) are dropped by number by the next reader.
      this.current = undefined;
      this.status = 'idle';
      return;
    }
    this.close(err);
  }
}

function noop(): void {}
