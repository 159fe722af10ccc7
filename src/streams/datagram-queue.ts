import { dataChunk, type HTTPChunk } from '../codec/http-chunk.js';
import { batchedSize, DATAGRAM_BATCH_BYTES, encodeBatch } from '../codec/datagram-batch.js';
import type { ByteCounter } from './http-source.js';
/** Bytes held by the queues that share it, and their most. */
export interface ByteBudget {
  bytes: number;
  readonly max: number;
}

/**
 * Datagrams of one UDP flow waiting for their consumer (the exchange's sink, or the reply socket).
 * UDP may lose datagrams and a sender that outruns the tunnel must not grow memory, so the queue
 * drops what does not fit (the caller counts it) instead of buffering without bound.
 */
export class DatagramQueue {
  private items: Buffer[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;

  /**
   * @param maxDatagrams most datagrams held; one more is dropped.
   * @param budget bytes shared with other queues (a port's flows): a count bound alone, times many
   *   queues of large datagrams, is no memory bound. A datagram that would take it past `max` is dropped.
   */
  constructor(
    private readonly maxDatagrams: number,
    private readonly budget: ByteBudget = { bytes: 0, max: Infinity },
  ) {}

  /** Queues `datagram`; false (dropped) when the queue is full or closed, or the budget spent. */
  push(datagram: Buffer): boolean {
    if (this.closed || this.items.length >= this.maxDatagrams || this.budget.bytes + datagram.byteLength > this.budget.max) return false;
    this.items.push(datagram);
    this.budget.bytes += datagram.byteLength;
    this.wake();
    return true;
  }

  /** Closes the queue and drops what it still holds, giving its bytes back to the budget (the consumer is gone). */
  discard(): void {
    this.close();
    for (const d of this.items) this.budget.bytes -= d.byteLength;
    this.items = [];
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
        this.budget.bytes -= next.byteLength;
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /**
   * The next datagrams in order, at least one, more only while they are already queued and their
   * `size` sum stays within `maxBytes` (a batch never waits to fill: a lone datagram goes at once).
   * Undefined once closed and empty.
   */
  async takeBatch(maxBytes: number, size: (d: Buffer) => number): Promise<Buffer[] | undefined> {
    if (this.items.length === 0) {
      while (this.items.length === 0) {
        if (this.closed) return undefined;
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
      // Woken by the first datagram of a socket read: Node runs microtasks after each datagram's
      // 'message', so without this every batch would be one datagram. setImmediate lets the rest of
      // the datagrams of this event-loop turn's read arrive first (no timer: not a wait to fill).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    let n = 1;
    let bytes = size(this.items[0]);
    while (n < this.items.length && bytes + size(this.items[n]) <= maxBytes) bytes += size(this.items[n++]);
    const batch = this.items.splice(0, n);
    for (const d of batch) this.budget.bytes -= d.byteLength;
    return batch;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/**
 * What `queue` holds, as the DATA of a datagram exchange: with batching agreed, each DATA a batch of the
 * datagrams already queued (never waiting for company, at most DATAGRAM_BATCH_BYTES); without, one
 * datagram per DATA. Datagram bytes are counted into `counter`; ends when the queue does.
 */
export async function* datagramChunks(queue: DatagramQueue, batching: boolean, counter: ByteCounter): AsyncGenerator<HTTPChunk> {
  for (;;) {
    const batch = await queue.takeBatch(batching ? DATAGRAM_BATCH_BYTES : 0, batchedSize);
    if (!batch) return;
    for (const d of batch) counter.bytes += d.byteLength;
    yield dataChunk(batching ? encodeBatch(batch) : batch[0]);
  }
}
