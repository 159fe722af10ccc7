import { destination, pino, type Logger } from 'pino';

export type { Logger };

/** Log level names accepted by `--log-level` / `JETTY_LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Creates the process logger: JSON lines on stderr (stdout carries the stable lines scripts grep).
 * `silent` is what tests use.
 */
export function createLogger(level: string = 'info', name?: string): Logger {
  return pino({ level, name, base: undefined }, destination({ fd: 2, sync: false }));
}

/** A logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
