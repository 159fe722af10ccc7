/**
 * `source`, ending with `signal`'s reason as soon as it aborts, even while a read is pending (a public
 * upload whose exchange failed must stop waiting for bytes that may never come). The pending read of
 * `source` is left as it is; its owner disposes of it.
 *
 * Not `Promise.race([it.next(), aborted])` per read: every race leaves a reaction on the long-lived
 * `aborted` promise that keeps the race's settled promise, and so its chunk, alive until the exchange
 * ends (a 1 GiB upload held 1 GiB of Buffers on the edge). One abort listener rejects whichever read is
 * pending; a settled read keeps nothing.
 */
export async function* abortable<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let rejectPending: ((reason: unknown) => void) | undefined;
  const onAbort = (): void => rejectPending?.(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const next = await new Promise<IteratorResult<T>>((resolve, reject) => {
        rejectPending = reject;
        it.next().then(resolve, reject);
      });
      rejectPending = undefined;
      if (next.done) return;
      yield next.value;
    }
  } finally {
    rejectPending = undefined;
    signal.removeEventListener('abort', onAbort);
  }
}
