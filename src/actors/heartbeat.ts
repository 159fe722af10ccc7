/** Default interval of the edge's liveness pings, in ms. */
export const DEFAULT_PING_INTERVAL_MS = 10_000;
/** A peer silent for this many intervals is declared dead. */
export const PING_MISSES = 3;

export interface HeartbeatInit {
  intervalMs: number;
  /** Called every interval while the peer is alive (the edge sends its Ping here). */
  onTick?: (nonce: number) => void;
  /** Called once when the peer has been silent for PING_MISSES intervals. */
  onDead: (silentMs: number) => void;
  /** Round-trip time of an answered ping, in ms. */
  onRtt?: (rttMs: number) => void;
}

/**
 * Liveness of one peer: `alive()` on every sign of life (Pong, Ping); silence for PING_MISSES
 * intervals calls onDead. The timer is unref'd and stops itself after onDead or stop().
 */
export class Heartbeat {
  private last = Date.now();
  private nonce = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly init: HeartbeatInit) {
    this.timer = setInterval(() => this.tick(), init.intervalMs);
    this.timer.unref();
  }

  private pingSentAt = 0;

  /** A sign of life; with the nonce of the last ping, also a round-trip measurement. */
  alive(nonce?: number): void {
    this.last = Date.now();
    if (nonce !== undefined && nonce === this.nonce && this.pingSentAt > 0) {
      this.init.onRtt?.(this.last - this.pingSentAt);
      this.pingSentAt = 0;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const silent = Date.now() - this.last;
    if (silent >= PING_MISSES * this.init.intervalMs) {
      this.stop();
      this.init.onDead(silent);
      return;
    }
    if (this.init.onTick) {
      this.pingSentAt = Date.now();
      this.init.onTick(++this.nonce);
    }
  }
}
