import { format } from 'node:util';
import { levels, pino, symbols, type Logger, type LoggerOptions } from 'pino';
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

/** Most log bytes gathered before they go to the destination together, without waiting for the interval. */
export const LOG_TURN_BATCH_BYTES = 64 * 1024;

/** Longest a log line waits in the batch before it is handed to the destination, ms. */
export const LOG_FLUSH_INTERVAL_MS = 10;

/**
 * The log lines of LOG_FLUSH_INTERVAL_MS, handed to the destination as one write. Each request line
 * was an asynchronous fs.write of its own (a thread-pool request and a wake-up): 7–8 % of the agent's
 * CPU per small request; one write per event-loop turn still cost 5–9 % of each side under load
 * (a turn finishes only one to three exchanges there), where one per 10 ms costs next to nothing and
 * no reader of a log notices 10 ms. A line waits at most LOG_FLUSH_INTERVAL_MS, or less once
 * LOG_TURN_BATCH_BYTES are gathered; the destination's own bound (LOG_BUFFER_MAX_BYTES) still applies
 * behind it, and whenWritten() (before process.exit) hands over what is gathered at once.
 */
export class TurnBatch {
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onInterval = (): void => {
    this.timer = undefined;
    this.flushLines();
  };

  constructor(readonly dest: Pick<SonicBoom, 'write' | 'flush'>) {}

  write(line: string): boolean {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= LOG_TURN_BATCH_BYTES) this.flushLines();
    else this.timer ??= setTimeout(this.onInterval, LOG_FLUSH_INTERVAL_MS);
    return true;
  }

  /** Hands the lines gathered so far to the destination now. */
  flushLines(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
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
  // Pretty lines are for a person at a terminal: written as they come. JSON lines are batched (TurnBatch).
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
  // Lines still gathered in the batch go first, or process.exit would drop them.
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

/** The request-line child of each logger, and whether its lines can be built by hand (logRequestLine). */
const requestLines = new WeakMap<Logger, { child: Logger; plain: boolean }>();

/** pino's symbols a request line is built from (pino 9; test/logger.test.ts checks the lines match pino's). */
const SYM = symbols as unknown as Record<string, symbol>;
const INFO = levels.values.info;

/** pino's internals, read by symbol. */
type PinoInternals = Record<symbol, unknown>;

interface LineStream {
  write(line: string): unknown;
}

/**
 * Whether pino would write `logger`'s line as its level, time, bindings, the object's own fields and
 * `msg`, nothing else: no mixin, log formatter, stream hook, message prefix or stream that wants the
 * parts apart (pino.multistream).
 */
export function writesPlainLines(logger: Logger): boolean {
  const l = logger as unknown as PinoInternals;
  const stream = l[SYM.streamSym] as (Partial<LineStream> & Record<symbol, unknown>) | undefined;
  return (
    typeof l[SYM.chindingsSym] === 'string' &&
    typeof l[SYM.timeSym] === 'function' &&
    typeof l[SYM.endSym] === 'string' &&
    typeof (l[SYM.lsCacheSym] as Record<number, unknown> | undefined)?.[INFO] === 'string' &&
    !(l[SYM.formattersSym] as { log?: unknown } | undefined)?.log &&
    !(l[SYM.hooksSym] as { streamWrite?: unknown } | undefined)?.streamWrite &&
    !l[SYM.mixinSym] &&
    l[SYM.msgPrefixSym] === undefined &&
    l[SYM.messageKeySym] === 'msg' &&
    typeof stream?.write === 'function' &&
    stream[SYM.needsMetadataGsym] !== true
  );
}

function requestLineEntry(logger: Logger): { child: Logger; plain: boolean } {
  let entry = requestLines.get(logger);
  if (!entry) {
    const child = logger.child({}, { redact: [] });
    entry = { child, plain: writesPlainLines(child) };
    requestLines.set(logger, entry);
  }
  return entry;
}

/**
 * A child of `logger` that does not redact, one per logger (never one per request), for the request
 * line: its fields are fixed by Jetty's code (ExchangeRecord plus each side's `fields`: host,
 * transport, protocol, tunnel, kind…), none of them a header or a token, and REDACTED_PATHS with its
 * wildcard cost ≈ 4 µs per line on both sides of every exchange (a third of the line's cost).
 */
export function requestLineLogger(logger: Logger): Logger {
  return requestLineEntry(logger).child;
}

/**
 * Writes one request line at info: the fields of `parts` (objects with distinct keys, Jetty's own
 * fixed fields) and `msg`, the same line requestLineLogger(logger).info({ ...parts }, msg) writes.
 * The line is one JSON.stringify per part spliced between pino's own level, time and bindings:
 * pino's per-field serialisation and the merged object cost ≈ 6 % of each side's CPU per small
 * request. A logger set up otherwise (a mixin, a formatter) is left to pino.
 */
export function logRequestLine(logger: Logger, msg: string, ...parts: object[]): void {
  const { child, plain } = requestLineEntry(logger);
  if (!child.isLevelEnabled('info')) return;
  if (!plain) {
    child.info(Object.assign({}, ...parts), msg);
    return;
  }
  const l = child as unknown as PinoInternals;
  let line = (l[SYM.lsCacheSym] as Record<number, string>)[INFO] + (l[SYM.timeSym] as () => string)() + (l[SYM.chindingsSym] as string);
  for (const part of parts) {
    const json = JSON.stringify(part);
    if (json.length > 2) line += `,${json.slice(1, -1)}`;
  }
  (l[SYM.streamSym] as LineStream).write(`${line},"msg":${JSON.stringify(msg)}${l[SYM.endSym] as string}`);
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
