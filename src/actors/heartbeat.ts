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

  alive(): void {
    this.last = Date.now();
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
    this.init.onTick?.(++this.nonce);
  }
}
