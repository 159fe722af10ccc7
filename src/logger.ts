import { format } from 'node:util';
import { pino, type Logger, type LoggerOptions } from 'pino';
import { createRequire } from 'node:module';
import type prettyFactory from 'pino-pretty';
import type * as GrpcJs from '@grpc/grpc-js';
import SonicBoomModule, { type SonicBoom } from 'sonic-boom';

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

/** Log bytes held while stderr is slow (a paused pager, a full pipe); beyond it lines are dropped. */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Asynchronous stderr for log lines, built so that logging can never block or hang the process: a
 * write error (EPIPE when the reader of a pipe is gone, a full disk) turns logging off instead of
 * being retried, and nothing flushes synchronously at exit (pino's own destination does, and its
 * flushSync retries EPIPE forever, in Atomics.wait, so Ctrl-C under `| tee` could not stop the edge).
 */
export function stderrDestination(fd = 2): SonicBoom {
  return quietOnError(new (SonicBoomModule as unknown as typeof SonicBoom)({ fd, sync: false, maxLength: LOG_BUFFER_MAX_BYTES }));
}

/**
 * Log lines appended to `path` (created with its folder), as asynchronously as stderr's and with the
 * same bound, for while the agent's live status view owns the terminal.
 */
export function fileDestination(path: string): SonicBoom {
  return quietOnError(new (SonicBoomModule as unknown as typeof SonicBoom)({ dest: path, append: true, mkdir: true, sync: false, maxLength: LOG_BUFFER_MAX_BYTES }));
}

/** After a write error the destination drops everything: logging never blocks or ends the process. */
function quietOnError(dest: SonicBoom): SonicBoom {
  dest.on('error', () => {
    dest.write = () => true;
    dest.flush = (cb?: (err?: Error) => unknown) => void cb?.();
    dest.flushSync = () => undefined;
  });
  return dest;
}

/** Most log bytes gathered in one turn of the event loop before they go to the destination together. */
export const LOG_TURN_BATCH_BYTES = 64 * 1024;

/**
 * The log lines of one turn of the event loop, handed to the destination as one write. Under load a
 * turn finishes several exchanges, and each request line was an asynchronous fs.write of its own (a
 * thread-pool request and a wake-up): 7–8 % of the agent's CPU per small request in the profile.
 * A line waits at most until the end of its turn (setImmediate) or until LOG_TURN_BATCH_BYTES are
 * gathered; the destination's own bound (LOG_BUFFER_MAX_BYTES) still applies behind it.
 */
export class TurnBatch {
  private lines: string[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly onTurn = (): void => {
    this.scheduled = false;
    this.flushLines();
  };

  constructor(readonly dest: Pick<SonicBoom, 'write' | 'flush'>) {}

  write(line: string): boolean {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= LOG_TURN_BATCH_BYTES) this.flushLines();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onTurn);
    }
    return true;
  }

  /** Hands the lines gathered so far to the destination now. */
  flushLines(): void {
    if (this.lines.length === 0) return;
    const text = this.lines.length === 1 ? this.lines[0] : this.lines.join('');
    this.lines = [];
    this.bytes = 0;
    this.dest.write(text);
  }

  /** pino's logger.flush(cb). */
  flush(cb?: (err?: Error) => unknown): void {
    this.flushLines();
    this.dest.flush(cb);
  }
}

const require = createRequire(import.meta.url);

/** pino-pretty, loaded only when a log is to be pretty (a process logging JSON never pays for it). */
function pretty(options: Parameters<typeof prettyFactory>[0]): ReturnType<typeof prettyFactory> {
  return (require('pino-pretty') as typeof prettyFactory)(options);
}

/**
 * Creates the process logger on stderr (stdout carries the stable lines scripts grep), or in `file`:
 * JSON lines, or pino-pretty (in-process, no worker thread) on a TTY. A file gets JSON unless
 * `pretty` is asked for (then without colours). `silent` is what tests use.
 */
export function createLogger(level: string = 'info', name?: string, format: LogFormat = 'auto', file?: string): Logger {
  const usePretty = format === 'pretty' || (format === 'auto' && file === undefined && process.stderr.isTTY === true);
  const options = loggerOptions(level, name);
  const dest = file === undefined ? stderrDestination() : fileDestination(file);
  // Pretty lines are for a person at a terminal: written as they come. JSON lines are batched per turn.
  const batch = usePretty ? undefined : new TurnBatch(dest);
  const logger = batch ? pino(options, batch) : pino(options, pretty({ destination: dest, colorize: file === undefined && !process.env.NO_COLOR, ignore: 'pid,hostname' }));
  destinations.set(logger, { dest, batch });
  return logger;
}

/** The destination createLogger() gave each logger (and its turn batch), for whenWritten(). */
const destinations = new WeakMap<Logger, { dest: SonicBoom; batch: TurnBatch | undefined }>();

/**
 * Calls `done` once the lines given to the logger have reached the file or pipe (or writing failed).
 * pino's flush(cb) does not wait for that: sonic-boom calls back at once when minLength is 0 (ours)
 * while its asynchronous write may still be in flight, so the last lines before process.exit (the
 * edge's "draining", a fatal error) were lost about one time in two.
 */
export function whenWritten(logger: Logger, done: () => void): void {
  const entry = destinations.get(logger);
  // Lines still gathered for this turn go first, or process.exit would drop them.
  entry?.batch?.flushLines();
  const dest = entry?.dest as (SonicBoom & { _writing?: boolean }) | undefined;
  if (!dest?._writing) return done();
  dest.once('drain', done);
  dest.once('error', done);
}

/** pino options shared by every Jetty logger: no pid/hostname, secrets redacted. */
export function loggerOptions(level: string, name?: string): LoggerOptions {
  return { level, name, base: undefined, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
}

/** The request-line child of each logger (requestLineLogger). */
const requestLines = new WeakMap<Logger, Logger>();

/**
 * A child of `logger` that does not redact, one per logger (never one per request), for the request
 * line: its fields are fixed by Jetty's code (ExchangeRecord plus each side's `fields`: host,
 * transport, protocol, tunnel, kind…), none of them a header or a token, and REDACTED_PATHS with its
 * wildcard cost ≈ 4 µs per line on both sides of every exchange (a third of the line's cost).
 */
export function requestLineLogger(logger: Logger): Logger {
  let child = requestLines.get(logger);
  if (!child) {
    child = logger.child({}, { redact: [] });
    requestLines.set(logger, child);
  }
  return child;
}

/** A logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * grpc-js writes its own errors to stderr as raw text ("E No address added out of total 1 resolved"),
 * above the line Jetty prints for the same failure, and into the live status view. They go to the
 * process logger at debug instead: Jetty reports every failure that matters in its own words.
 * Loads grpc-js: call it only in a process that uses gRPC (an agent on WebSocket never loads it).
 */
export function routeGrpcLogs(logger: Logger): void {
  const toDebug = (...args: unknown[]): void => logger.debug({ grpc: format(...args) }, 'grpc-js');
  (require('@grpc/grpc-js') as typeof GrpcJs).setLogger({ error: toDebug, info: toDebug, debug: toDebug });
}
