import type { Duplex } from 'node:stream';
import { ChunkKind, END_CHUNK, ResetCode, resetChunk, type HTTPChunk } from '../codec/http-chunk.js';
import { AbortError, ExchangeResetError, TransportClosedError, toError } from '../errors.js';
import type { BeginOptions, ChannelStatus, ExchangeDuplex } from './exchange-duplex.js';
import { GRPC_STREAM_WINDOW_BYTES } from './grpc-service.js';
import { ReadableReader } from './readable-reader.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';

/** objectMode high-water mark of a grpc-js call, in messages, on each side. */
const CALL_HIGH_WATER_MARK_CHUNKS = 16;
/**
 * Most body bytes one exchange can have sent but not yet consumed: the receiver's stream window
 * plus a call's objectMode buffer of full chunks on each side (DESIGN.md §3 budget).
 */
export const EXCHANGE_BUFFER_BOUND_BYTES = GRPC_STREAM_WINDOW_BYTES + 2 * CALL_HIGH_WATER_MARK_CHUNKS * MAX_CHUNK_DATA_BYTES;

export interface GrpcExchangeChannelInit {
  /** A grpc-js duplex call of HTTPChunk, client or server side (objectMode). */
  call: Duplex;
  /**
   * Ends the call for good after a RESET or a local failure. The agent cancels (RST_STREAM);
   * the edge ends with a status, since a grpc-js server call has no cancel.
   */
  terminate: (call: Duplex) => void;
  /** An exchange finished cleanly both ways: the channel can carry another. */
  onIdle?: (channel: GrpcExchangeChannel) => void;
  /** The call is over; the channel never carries another exchange. */
  onClose?: (channel: GrpcExchangeChannel, err: Error | undefined) => void;
}

/**
 * A ForwardHTTP call seen as a sequence of exchanges, one at a time. HTTP/2 flow control then applies
 * per exchange: a stalled exchange fills its own stream window and no other.
 *
 * Bound: what a stalled exchange holds is EXCHANGE_BUFFER_BOUND_BYTES (the stream's HTTP/2 window
 * plus the call's objectMode high-water mark on each side).
 *
 * Teardown order: exchange.abort → RESET written (best effort) → call terminated → reader
 * interrupted (pending read throws) → listeners released → onClose.
 */
export class GrpcExchangeChannel {
  status: ChannelStatus = 'idle';
  private readonly call: Duplex;
  private readonly reader: ReadableReader<HTTPChunk>;
  private readonly init: GrpcExchangeChannelInit;
  private current: ChannelExchange | undefined;
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

  constructor(init: GrpcExchangeChannelInit) {
    this.init = init;
    this.call = init.call;
    this.reader = new ReadableReader<HTTPChunk>(this.call);
    this.call.on('drain', this.onDrain);
    this.call.on('error', this.onCallError);
    this.call.on('close', this.onCallClose);
    this.call.on('cancelled', this.onCancelled);
    this.call.on('finish', this.onFinish);
  }

  /** The peer's next chunk while idle (the agent waits here for the next request HEADERS). */
  next(): Promise<HTTPChunk | null> {
    return this.reader.read();
  }

  /** Starts an exchange on an idle channel. */
  begin(id: string, options?: BeginOptions): ExchangeDuplex {
    if (this.status !== 'idle') throw new TransportClosedError(`channel is ${this.status}`);
    this.status = 'busy';
    this.current = new ChannelExchange(this, id, options?.headSent === true);
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
    // Keep an error listener: a late 'error' on an unobserved call must not crash the process.
    this.call.off('error', this.onCallError);
    this.call.on('error', noop);
    if (!this.call.destroyed) this.init.terminate(this.call);
    this.init.onClose?.(this, err);
  }

  /** @internal */
  async write(chunk: HTTPChunk): Promise<void> {
    if (this.status === 'closed') throw this.closeError ?? new TransportClosedError('channel closed');
    if (this.call.write(chunk)) return;
    await new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** @internal best-effort write that never waits (RESET before teardown). */
  writeNow(chunk: HTTPChunk): void {
    if (this.status !== 'closed' && this.call.writable) this.call.write(chunk);
  }

  /** @internal chunks already received and not yet read. */
  get bufferedChunks(): number {
    return this.call.readableLength;
  }

  /** @internal */
  read(): Promise<HTTPChunk | null> {
    return this.reader.read();
  }

  /** @internal the exchange finished cleanly both ways. */
  exchangeDone(exchange: ChannelExchange): void {
    if (this.current !== exchange || this.status !== 'busy') return;
    this.current = undefined;
    this.status = 'idle';
    this.init.onIdle?.(this);
  }
}

function noop(): void {}

class ChannelExchange implements ExchangeDuplex {
  readonly source: AsyncIterable<HTTPChunk>;
  readonly closed: Promise<void>;
  error: Error | undefined;
  private readDone = false;
  private writeDone = false;
  private settled = false;
  private resolveClosed!: () => void;

  constructor(
    private readonly channel: GrpcExchangeChannel,
    readonly id: string,
    private readonly headSent: boolean,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.source = this.readChunks();
  }

  private async *readChunks(): AsyncGenerator<HTTPChunk> {
    try {
      for (;;) {
        const chunk = await this.channel.read();
        if (chunk === null) throw new TransportClosedError('stream ended inside an exchange');
        if (chunk.kind === ChunkKind.END) {
          this.readDone = true;
          this.maybeDone();
          return;
        }
        if (chunk.kind === ChunkKind.RESET) {
          const err = new ExchangeResetError(chunk.reason || 'reset by peer', chunk.code ?? ResetCode.UNSPECIFIED);
          // The peer reset: no RESET goes back.
          this.fail(err, undefined);
          throw err;
        }
        yield chunk;
      }
    } catch (err) {
      this.fail(toError(err), undefined);
      throw this.error ?? err;
    } finally {
      // The consumer stopped reading before END: nobody will take the rest, so the exchange is over.
      if (!this.readDone && !this.error) this.fail(new AbortError('exchange reader stopped'), ResetCode.CANCEL);
    }
  }

  get buffered(): boolean {
    return this.channel.bufferedChunks > 0;
  }

  async sink(source: AsyncIterable<HTTPChunk>): Promise<void> {
    try {
      let first = this.headSent;
      for await (const chunk of source) {
        if (this.error) throw this.error;
        if (first) {
          first = false;
          if (chunk.kind === ChunkKind.HEADERS) continue;
        }
        await this.channel.write(chunk);
      }
      if (this.error) throw this.error;
      await this.channel.write(END_CHUNK);
      this.writeDone = true;
      this.maybeDone();
    } catch (err) {
      const e = toError(err);
      this.fail(e, e instanceof ExchangeResetError ? e.resetCode : ResetCode.INTERNAL);
      throw this.error ?? e;
    }
  }

  abort(err: Error, code: ResetCode = ResetCode.INTERNAL): void {
    this.fail(err, code);
  }

  /** Fails the exchange once: RESET to the peer when `code` is given, then the channel closes. */
  fail(err: Error, code: ResetCode | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.error = err;
    if (code !== undefined && !this.writeDone) this.channel.writeNow(resetChunk(code, err.message));
    this.channel.close(err);
    this.resolveClosed();
  }

  private maybeDone(): void {
    if (!this.readDone || !this.writeDone || this.settled) return;
    this.settled = true;
    this.resolveClosed();
    this.channel.exchangeDone(this);
  }
}
