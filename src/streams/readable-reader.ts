import type { Readable } from 'node:stream';
import { TransportClosedError } from '../errors.js';

/**
 * Pull reader over a Node Readable that, unlike `for await`, never destroys the stream when the
 * reader stops: a gRPC call must outlive one exchange (and `for await` on a grpc-js call leaves the
 * peer without a status). `read()` resolves with the next item, or null at a clean end.
 */
export class ReadableReader<T> {
  private waiter: (() => void) | undefined;
  private ended = false;
  private error: Error | undefined;
  private readonly wake = (): void => {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  };
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

  constructor(private readonly stream: Readable) {
    stream.on('readable', this.wake);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
  }

  /** Next item; null once the stream ended cleanly; throws the stream's error or the interrupt. */
  async read(): Promise<T | null> {
    for (;;) {
      if (this.error) throw this.error;
      const item = this.stream.read() as T | null;
      if (item !== null) return item;
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Makes the pending and every later read() throw `err`. */
  interrupt(err: Error): void {
    this.error ??= err;
    this.wake();
  }

  /** Removes the listeners; the stream itself is left as it is. */
  release(): void {
    this.stream.off('readable', this.wake);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.off('close', this.onClose);
  }
}
