import type { EventEmitter } from 'node:events';

/** Per-call options of every async function: a signal whose abort (with an Error reason) ends the work. */
export interface AbortOptions {
  signal?: AbortSignal;
}

export interface WaitOptions extends AbortOptions {
  /** Give up after this many ms (resolving false); default never. */
  timeoutMs?: number;
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
