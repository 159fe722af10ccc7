import { ActorStoppedError, MailboxFullError } from '../errors.js';

/** Default mailbox capacity, in messages. */
export const DEFAULT_MAILBOX_CAPACITY = 1024;

/**
 * A bounded FIFO of messages for one actor. `post()` never waits: a full mailbox is the caller's
 * signal that the actor is overloaded (MailboxFullError), so memory stays bounded by `capacity`.
 */
export class Mailbox<M> {
  private readonly queue: M[] = [];
  private head = 0;
  private waiter: ((msg: M | undefined) => void) | undefined;
  private stopped = false;

  constructor(readonly capacity: number = DEFAULT_MAILBOX_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.queue.length - this.head;
  }

  /**
   * The actor is waiting for its next message: every message posted so far has been handled (a message
   * handed straight to a waiting receive() is not counted by `size`, yet is still unhandled).
   */
  get idle(): boolean {
    return this.waiter !== undefined;
  }

  /** Enqueues a message; throws MailboxFullError when full and ActorStoppedError after stop(). */
  post(msg: M): void {
    if (this.stopped) throw new ActorStoppedError('actor stopped');
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(msg);
      return;
    }
    if (this.size >= this.capacity) throw new MailboxFullError(`mailbox full (${this.capacity} messages)`);
    this.queue.push(msg);
  }

  /** The next message, or undefined once stopped and empty. */
  receive(): Promise<M | undefined> {
    if (this.size > 0) {
      const msg = this.queue[this.head];
      this.queue[this.head++] = undefined as M;
      if (this.head > 64 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve(msg);
    }
    if (this.stopped) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Refuses new messages; the ones queued are still delivered, then receive() yields undefined. */
  stop(): void {
    this.stopped = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(undefined);
  }

  /** Drops and returns whatever is still queued (for an actor that aborts). */
  drain(): M[] {
    const rest = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    return rest;
  }
}
