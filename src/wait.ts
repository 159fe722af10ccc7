import { once, type EventEmitter } from 'node:events';
import { AbortError, JettyError } from './errors.js';

/** The per-call options every async function takes last (STYLE.md: honoured before and during work). */
export interface AbortOptions {
  signal?: AbortSignal;
}

export interface WaitOptions extends AbortOptions {
  /** Give up after this many ms; none by default. */
  timeoutMs?: number;
  /** The error a wait that ran out of time rejects with; default a WaitTimeoutError. */
  timeoutError?: Error;
}

/** A wait for an event ran out of time. */
export class WaitTimeoutError extends JettyError {
  override readonly code = 'ERR_WAIT_TIMEOUT';
}

/**
 * The arguments of `emitter`'s next `event`. Rejects with the emitter's `error` event (events.once
 * does), with the signal's reason when it aborts, or with `timeoutError` after `timeoutMs`. No
 * listener or timer is left behind whichever way it ends.
 */
export async function waitForEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, options: WaitOptions = {}): Promise<T> {
  const { signal, timeoutMs } = options;
  if (signal?.aborted) throw reasonOf(signal);
  // Nothing to cancel the wait by: no controller (an AbortSignal costs on every request's path).
  if (!signal && timeoutMs === undefined) return (await once(emitter, event)) as T;
  // One controller of our own, linked by hand and unlinked in finally (AbortSignal.any leaks on Node 20).
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(reasonOf(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => stop.abort(options.timeoutError ?? new WaitTimeoutError(`no "${event}" within ${timeoutMs} ms`)), timeoutMs);
  try {
    return (await once(emitter, event, { signal: stop.signal })) as T;
  } catch (err) {
    // events.once wraps the reason in its own AbortError; callers want the reason itself.
    throw stop.signal.aborted ? stop.signal.reason : err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * A promise that rejects with `err` after `ms`, for `Promise.race` against work that has no signal of
 * its own. Abort `options.signal` once the race is over: the timer goes and the promise rejects with
 * the signal's reason (handled here, so an unobserved loser is not an unhandled rejection).
 */
export function deadline(ms: number, err: Error, options: AbortOptions = {}): Promise<never> {
  const { signal } = options;
  const late = new Promise<never>((_, reject) => {
    if (signal?.aborted) return reject(reasonOf(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(reasonOf(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  late.catch(() => undefined);
  return late;
}

/** An abort always carries an error (STYLE.md); a bare `abort()` becomes an AbortError. */
function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new AbortError('aborted', { cause: signal.reason });
}

/**
 * Waits until `condition()` holds, testing it now and after every `event` of `emitter`. Resolves true
 * once it holds, false when `timeoutMs` passes first; rejects with the signal's reason on abort.
 * Listeners and the timer are removed in every case.
 */
export function waitUntil(emitter: EventEmitter, event: string, condition: () => boolean, options: WaitOptions = {}): Promise<boolean> {
  const { signal, timeoutMs } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (condition()) return Promise.resolve(true);
  return new Promise<boolean>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = (fn: () => void): void => {
      emitter.off(event, onEvent);
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(timer);
      fn();
    };
    const onEvent = (): void => {
      if (condition()) settle(() => resolve(true));
    };
    const onAbort = (): void => settle(() => reject(signal!.reason));
    emitter.on(event, onEvent);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) timer = setTimeout(() => settle(() => resolve(false)), Math.max(0, timeoutMs));
  });
}
