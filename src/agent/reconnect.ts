import { setTimeout as sleep } from 'node:timers/promises';
import { toError } from '../errors.js';
import type { AbortOptions } from '../wait.js';
import { isFinal } from './refusals.js';

/** Reconnect backoff: first delay, factor 2 per attempt, full jitter, capped. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 30_000;

/** Delay before reconnect attempt `attempt` (0-based): random in [0, min(cap, base·2^attempt)]. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt));
}

export interface ReconnectOptions extends AbortOptions {
  /** Called before each attempt's wait. */
  onRetry?: (reason: string, delayMs: number) => void;
}

/**
 * Calls `connect` until it succeeds, waiting backoffMs() before each attempt. Rejects with a final
 * refusal (isFinal: no retry fixes it) or with the signal's reason once aborted.
 */
export async function reconnect<T>(reason: Error, connect: (options: AbortOptions) => Promise<T>, options: ReconnectOptions = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const delay = backoffMs(attempt);
    options.onRetry?.(attempt === 0 ? reason.message : `attempt ${attempt}: ${reason.message}`, delay);
    await sleep(delay, undefined, { signal: options.signal });
    try {
      return await connect({ signal: options.signal });
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isFinal(err)) throw err;
      reason = toError(err);
    }
  }
}
