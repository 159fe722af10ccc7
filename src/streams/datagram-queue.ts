/**
 * Datagrams of one UDP flow waiting for their consumer (the exchange's sink, or the reply socket).
 * UDP may lose datagrams and a sender that outruns the tunnel must not grow memory, so the queue
 * drops what does not fit (the caller counts it) instead of buffering without bound.
 */
export class DatagramQueue {
  private items: Buffer[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;

  /** @param maxDatagrams most datagrams held; one more is dropped. */
  constructor(private readonly maxDatagrams: number) {}

  /** Queues `datagram`; false (dropped) when the queue is full or closed. */
  push(datagram: Buffer): boolean {
    if (this.closed || this.items.length >= this.maxDatagrams) return false;
    this.items.push(datagram);
    this.wake();
    return true;
  }

  get length(): number {
    return this.items.length;
  }

  /** Ends the iteration once what is queued has been taken; later pushes are dropped. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  /** The datagrams, in order, as the consumer pulls; ends after close(). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
