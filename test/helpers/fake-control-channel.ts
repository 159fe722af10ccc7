import { pushable } from 'it-pushable';
import type { ControlChannel } from '../../src/actors/control-channel.js';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { TransportClosedError } from '../../src/errors.js';

/**
 * A control channel with no transport under it: what the agent "sends" is pushed by the test, what the
 * edge sends is recorded. `hold()` stops the transport from taking sends (backpressure) until `release()`.
 */
export class FakeControlChannel implements ControlChannel {
  readonly transport: string;
  readonly peer = '127.0.0.1';
  readonly sent: EdgeMessage[] = [];
  closedWith: Error | undefined;
  private readonly incoming = pushable<AgentMessage>({ objectMode: true });
  readonly messages = this.incoming[Symbol.asyncIterator]();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  constructor(transport = 'fake') {
    this.transport = transport;
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  get opens(): HTTPChunk[] {
    return this.sent.flatMap((m) => (m.open ? [m.open.headers] : []));
  }

  get cancels(): string[] {
    return this.sent.flatMap((m) => (m.cancel ? [m.cancel.exchangeId] : []));
  }

  /** The kinds of message sent so far, in order (`registered`, `open`, `ping`…). */
  get kinds(): string[] {
    return this.sent.map((m) => Object.keys(m).find((k) => m[k as keyof EdgeMessage]) ?? '?');
  }

  /** The agent sends `msg`. */
  push(msg: AgentMessage): void {
    this.incoming.push(msg);
  }

  /** The agent ends its control stream (cleanly, or with `err`). */
  end(err?: Error): void {
    this.incoming.end(err);
  }

  hold(): void {
    this.gate ??= new Promise<void>((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async send(msg: EdgeMessage): Promise<void> {
    while (this.gate) await this.gate;
    if (this.closedWith) throw new TransportClosedError('fake channel closed');
    this.sent.push(msg);
  }

  close(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.incoming.end();
    this.release();
  }
}

/** A Registered payload for sessions started by hand in tests. */
export const REGISTERED = { name: 'n', url: 'http://n.localhost', sessionId: 's' };
