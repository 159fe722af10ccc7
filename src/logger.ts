import { destination, pino, transport, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Log level names accepted by `--log-level` / `JETTY_LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** `auto`: pretty when stderr is a TTY (and NO_COLOR unset keeps colours), JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Fields never logged in clear, wherever they appear in a log object. */
export const REDACTED_PATHS = [
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["proxy-authorization"]',
  'token',
  '*.token',
];

/**
 * Creates the process logger on stderr (stdout carries the stable lines scripts grep): JSON lines,
 * or pino-pretty on a TTY. `silent` is what tests use.
 */
export function createLogger(level: string = 'info', name?: string, format: LogFormat = 'auto'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const options = loggerOptions(level, name);
  if (pretty) {
    const colorize = !process.env.NO_COLOR;
    return pino(options, transport({ target: 'pino-pretty', options: { destination: 2, colorize, ignore: 'pid,hostname' } }));
  }
  return pino(options, destination({ fd: 2, sync: false }));
}

/** pino options shared by every Jetty logger: no pid/hostname, secrets redacted. */
export function loggerOptions(level: string, name?: string): LoggerOptions {
  return { level, name, base: undefined, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
}

/** A logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
