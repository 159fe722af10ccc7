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
 * Liveness of one peer: `alive()` on every sign of life (the edge's Ping, seen by the agent) or
 * `alive(nonce)` for a Pong, which counts only when it answers a ping still outstanding; silence for
 * PING_MISSES intervals calls onDead. The timer is unref'd and stops itself after onDead or stop().
 */
export class Heartbeat {
  private last = Date.now();
  /** Nonce of the last ping sent; pings are numbered from 1. */
  private nonce = 0;
  /** Highest nonce answered so far: pongs at or below it are stale or replayed. */
  private answered = 0;
  private pingSentAt = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly init: HeartbeatInit) {
    this.timer = setInterval(() => this.tick(), init.intervalMs);
    this.timer.unref();
  }

  /**
   * A sign of life. With a nonce (a Pong), it counts only for a ping sent and not yet answered, so a
   * peer cannot stay "alive" by sending pongs of its own making; the last ping's answer is also a
   * round-trip measurement. Returns whether it counted.
   */
  alive(nonce?: number): boolean {
    if (nonce !== undefined) {
      if (!Number.isInteger(nonce) || nonce <= this.answered || nonce > this.nonce) return false;
      this.answered = nonce;
    }
    this.last = Date.now();
    if (nonce !== undefined && nonce === this.nonce && this.pingSentAt > 0) {
      this.init.onRtt?.(this.last - this.pingSentAt);
      this.pingSentAt = 0;
    }
    return true;
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
