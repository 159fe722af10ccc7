import type { Readable } from 'node:stream';
import { TransportClosedError } from '../errors.js';

/**
 * How a Readable stopped, as state a pull reader checks: a clean end, its error, or a close before its
 * end. `wake` is called on each, so a reader waiting for data looks again.
 */
export class StreamStop {
  ended = false;
  error: Error | undefined;
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    this.error ??= err;
    this.wake();
  };
  private readonly onClose = (): void => {
    if (!this.ended) this.error ??= new TransportClosedError('stream closed before its end');
    this.wake();
  };

  constructor(
    private readonly stream: Readable,
    private readonly wake: () => void,
  ) {
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
  }

  /** Makes the reader see `err` as the stream's error (unless it already has one). */
  interrupt(err: Error): void {
    this.error ??= err;
    this.wake();
  }

  release(): void {
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.off('close', this.onClose);
  }
}

/**
 * Pull reader over a Node Readable that, unlike `for await`, never destroys the stream when the
 * reader stops: a gRPC call must outlive one exchange (and `for await` on a grpc-js call leaves the
 * peer without a status). `read()` resolves with the next item, or null at a clean end.
 */
export class ReadableReader<T> {
  private waiter: (() => void) | undefined;
  private readonly wake = (): void => {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  };
  private readonly stop: StreamStop;

  constructor(private readonly stream: Readable) {
    stream.on('readable', this.wake);
    this.stop = new StreamStop(stream, this.wake);
  }

  /** Next item; null once the stream ended cleanly; throws the stream's error or the interrupt. */
  async read(): Promise<T | null> {
    for (;;) {
      if (this.stop.error) throw this.stop.error;
      const item = this.stream.read() as T | null;
      if (item !== null) return item;
      if (this.stop.ended) return null;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Makes the pending and every later read() throw `err`. */
  interrupt(err: Error): void {
    this.stop.interrupt(err);
  }

  /** Removes the listeners; the stream itself is left as it is. */
  release(): void {
    this.stream.off('readable', this.wake);
    this.stop.release();
  }
}
