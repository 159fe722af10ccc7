import { ActorStoppedError, toError } from '../errors.js';
import { Mailbox } from './mailbox.js';

/**
 * An actor: state changed only by its own loop, one message at a time, from a bounded mailbox.
 * Subclasses implement `handle` and `cleanup`.
 */
export abstract class Actor<M> {
  protected readonly mailbox: Mailbox<M>;
  /** Settles once the loop has ended and cleanup ran. */
  readonly closed: Promise<void>;
  private abortError: Error | undefined;

  constructor(capacity?: number) {
    this.mailbox = new Mailbox<M>(capacity);
    this.closed = this.run();
  }

  /** Why the actor stopped, if it was aborted. */
  get error(): Error | undefined {
    return this.abortError;
  }

  get stopped(): boolean {
    return this.abortError !== undefined;
  }

  /** Delivers a message; throws MailboxFullError when the mailbox is full. */
  send(msg: M): void {
    this.mailbox.post(msg);
  }

  /** Stops now: queued messages are handed to `dropped`, then cleanup runs. Idempotent. */
  abort(err: Error): void {
    if (this.abortError) return;
    this.abortError = err;
    for (const msg of this.mailbox.drain()) this.dropped(msg, err);
    this.mailbox.stop();
  }

  protected abstract handle(msg: M): void;
  /** Releases everything the actor owns; runs once, after the loop. */
  protected abstract cleanup(err: Error): void;
  /** A message that will never be handled (the actor stopped first). */
  protected abstract dropped(msg: M, err: Error): void;

  private async run(): Promise<void> {
    // Let the subclass constructor finish before the first message is handled.
    await Promise.resolve();
    for (;;) {
      const msg = await this.mailbox.receive();
      if (msg === undefined) break;
      try {
        this.handle(msg);
      } catch (err) {
        this.abort(toError(err));
      }
    }
    this.cleanup(this.abortError ?? new ActorStoppedError('actor stopped'));
  }
}
