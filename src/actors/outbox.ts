import type { EdgeMessage } from '../codec/tunnel-codec.js';
import { MailboxFullError, toError } from '../errors.js';

/** Control messages that may wait for the transport; beyond, the agent is not reading its control stream. */
export const DEFAULT_OUTBOX_CAPACITY = 256;

/**
 * A session's control messages on their way out, one at a time: each waits until the transport took
 * the previous one (its flow control), so a slow agent holds at most `capacity` small messages here.
 * Carries control only (Registered, Open, Cancel, Ping, Drain), never body bytes.
 */
export class Outbox {
  private readonly queue: Array<{ msg: EdgeMessage; sent?: () => void }> = [];
  private pumping = false;
  private stopped = false;

  constructor(
    private readonly send: (msg: EdgeMessage) => Promise<void>,
    /** The transport refused a message (closed, failed): the owner ends the session. */
    private readonly onError: (err: Error) => void,
    readonly capacity = DEFAULT_OUTBOX_CAPACITY,
  ) {}

  /** Messages waiting for the transport. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * Queues `msg`; `sent` runs once the transport took it. Throws MailboxFullError when `capacity`
   * messages already wait. No-op once stopped.
   */
  post(msg: EdgeMessage, sent?: () => void): void {
    if (this.stopped) return;
    if (this.queue.length >= this.capacity) throw new MailboxFullError(`control outbox full (${this.capacity} messages): the agent does not read`);
    this.queue.push({ msg, sent });
    if (!this.pumping) void this.pump();
  }

  /** Drops what waits; later posts are ignored. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      let next: { msg: EdgeMessage; sent?: () => void } | undefined;
      while (!this.stopped && (next = this.queue.shift()) !== undefined) {
        await this.send(next.msg);
        next.sent?.();
      }
    } catch (err) {
      this.stop();
      this.onError(toError(err));
    } finally {
      this.pumping = false;
    }
  }
}
