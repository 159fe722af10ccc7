import type { Duplex } from 'node:stream';
import type { HTTPChunk } from '../codec/http-chunk.js';
import { TransportClosedError } from '../errors.js';
import { ExchangeBase } from './exchange-base.js';
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

class ChannelExchange extends ExchangeBase {
  constructor(
    private readonly channel: GrpcExchangeChannel,
    id: string,
    headSent: boolean,
  ) {
    super(id, headSent);
  }

  get buffered(): boolean {
    return this.channel.bufferedChunks > 0;
  }

  protected next(): Promise<HTTPChunk | null> {
    return this.channel.read();
  }

  protected send(chunk: HTTPChunk): Promise<void> {
    return this.channel.write(chunk);
  }

  protected sendNow(chunk: HTTPChunk): void {
    this.channel.writeNow(chunk);
  }

  protected failed(err: Error): void {
    this.channel.close(err);
  }

  protected finished(): void {
    this.channel.exchangeDone(this);
  }

  protected endedError(): Error {
    return new TransportClosedError('stream ended inside an exchange');
  }
}
