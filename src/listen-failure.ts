import { ListenError, toError } from './errors.js';

/** What a bind failure means to the person who chose the address, by the system's error code. */
const REASONS: Record<string, string> = {
  EADDRINUSE: 'the port is in use by another process',
  EACCES: 'not permitted (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
};

/**
 * Turns a listener's bind failure into one line that names the setting to change: the flag, and so
 * its JETTY_* variable and config key (settings.ts). grpc-js wraps the system error in its own text
 * ("No address added out of total 1 resolved errors: [listen EADDRINUSE …]"): the code is read from
 * either form.
 */
export function listenFailure(err: unknown, setting: string, address: string, valueHint = 'HOST:PORT'): Error {
  const e = toError(err) as Error & { code?: string };
  const code = typeof e.code === 'string' && e.code in REASONS ? e.code : Object.keys(REASONS).find((c) => e.message.includes(c));
  if (code === undefined) return e;
  return new ListenError(`cannot listen on ${address} (--${setting}): ${REASONS[code]}; choose another with --${setting} ${valueHint}`, { cause: err });
}

/** Awaits a listener's start; a bind failure becomes listenFailure(). */
export async function listenFor<T>(setting: string, address: string, start: Promise<T>, valueHint?: string): Promise<T> {
  try {
    return await start;
  } catch (err) {
    throw listenFailure(err, setting, address, valueHint);
  }
}
