import { DEFAULT_MAX_EXCHANGES } from '../actors/agent-session.js';
import { GRPC_MAX_CONCURRENT_STREAMS } from '../streams/grpc-service.js';
import { UsageError } from '../errors.js';

/**
 * Largest `max-header-bytes`. A request head travels to the agent as one HEADERS chunk, which must fit
 * one frame: MAX_FRAME_BYTES (320 KiB) on gRPC and WebSocket/protobuf, MAX_WS_FRAME_BYTES (437 KiB) on
 * the JSON codec, where obs-text bytes double in UTF-8. At this cap and MAX_HEADER_COUNT_CAP lines the
 * encoded head still fits both, with the fields the edge adds (test/edge/limits.test.ts). Above a frame,
 * one request would close the agent's whole session.
 */
export const MAX_HEADER_BYTES_CAP = 128 * 1024;
/** Largest `max-header-count` (each line costs a few bytes more encoded than raw). */
export const MAX_HEADER_COUNT_CAP = 10_000;

/** Edge limits (README "Configuration" lists the defaults). */
export interface EdgeLimits {
  /** Agent sessions per edge. */
  maxAgents: number;
  /** Exchanges in flight per tunnel name (all its agents); 429 beyond. */
  tunnelMaxExchanges: number;
  /** Requests per second per tunnel name, 0 = unlimited; 429 beyond. */
  tunnelRps: number;
  /** Request head bytes; 431 beyond. */
  maxHeaderBytes: number;
  /** Request header lines; 431 beyond. */
  maxHeaderCount: number;
  /** Time to receive a request head, ms. */
  headerTimeoutMs: number;
  /** An exchange with no bytes either way for this long is aborted, ms. */
  idleTimeoutMs: number;
  /**
   * An upgraded connection (WebSocket) with no bytes either way for this long is closed, ms. Longer than
   * idleTimeoutMs: a quiet WebSocket is normal.
   */
  upgradeIdleTimeoutMs: number;
  /** A public connection idle between requests is closed after this long, ms. */
  keepAliveTimeoutMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per agent connection. */
  h2MaxStreams: number;
  /** Agent sessions per token (its pool, reconnects included); refused beyond, the agent retries. */
  maxAgentsPerToken: number;
  /** Agent sessions per source address (the TCP peer; ::ffff:a.b.c.d counts as a.b.c.d); refused beyond. */
  maxAgentsPerIp: number;
  /**
   * Open public connections, and exchanges in flight, per client address (behind a trusted proxy: per
   * forwarded client). Connections beyond are closed at accept, exchanges beyond get 429.
   */
  maxConnectionsPerIp: number;
}

/** Most rate-limit buckets kept before refilled ones are pruned. */
const MAX_BUCKETS = 10_000;

export const DEFAULT_LIMITS: EdgeLimits = {
  maxAgents: 1000,
  tunnelMaxExchanges: 512,
  tunnelRps: 0,
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  headerTimeoutMs: 30_000,
  idleTimeoutMs: 300_000,
  upgradeIdleTimeoutMs: 3_600_000,
  keepAliveTimeoutMs: 65_000,
  h2MaxStreams: GRPC_MAX_CONCURRENT_STREAMS,
  maxAgentsPerToken: 100,
  maxAgentsPerIp: 50,
  // Half of one agent's exchanges: a single address (128 dripping uploads, say) cannot fill a tunnel.
  maxConnectionsPerIp: DEFAULT_MAX_EXCHANGES / 2,
};

/**
 * A token bucket per tunnel name: `rps` tokens per second, bursts up to `rps`. Buckets that have
 * refilled are pruned once there are more than MAX_BUCKETS, so memory stays bounded.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly rps: number) {}

  private prune(now: number): void {
    for (const [name, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rps >= this.rps) this.buckets.delete(name);
    }
  }

  /** True if a request for `name` may pass now; otherwise the seconds to wait. */
  take(name: string, now = Date.now()): true | number {
    if (this.rps <= 0) return true;
    const b = this.buckets.get(name) ?? { tokens: this.rps, at: now };
    b.tokens = Math.min(this.rps, b.tokens + ((now - b.at) / 1000) * this.rps);
    b.at = now;
    this.buckets.set(name, b);
    if (this.buckets.size > MAX_BUCKETS) this.prune(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rps));
  }
}

/** Throws UsageError when a limit is beyond what the tunnel protocol can carry. */
export function checkLimits(limits: EdgeLimits): void {
  if (limits.maxHeaderBytes > MAX_HEADER_BYTES_CAP) {
    throw new UsageError(`max-header-bytes ${limits.maxHeaderBytes} is above ${MAX_HEADER_BYTES_CAP}: a request head must fit one tunnel frame`);
  }
  if (limits.maxHeaderCount > MAX_HEADER_COUNT_CAP) throw new UsageError(`max-header-count ${limits.maxHeaderCount} is above ${MAX_HEADER_COUNT_CAP}`);
}
