import type { Dispatcher, Pool } from 'undici';
import { ChunkKind, ResetCode, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields, flatFields, framedFields, pairFields, trailerFields } from '../codec/http-fields.js';
import { ExchangeResetError, ProtocolError, toError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { FOLD_MAX_DATA_BYTES } from '../streams/http-source.js';
import { GATHER_HIGH_WATER_BYTES, takeDataChunk } from '../streams/gathering-reader.js';

/**
 * Response body bytes read from the origin ahead of the exchange: past it the origin's socket is paused
 * until the exchange takes them (the same read-ahead as GatheringReader's on Node's own client).
 */
export const POOLED_READ_AHEAD_BYTES = GATHER_HIGH_WATER_BYTES;

/** How long an idle origin connection is kept, ms (the origin's own Keep-Alive timeout wins when shorter). */
export const POOLED_KEEP_ALIVE_MS = 4_000;

/**
 * undici's Pool from its own file. The package's index also loads fetch, WebSocket, EventSource and the
 * mock and cache layers, none of which the agent uses: a fresh agent's first request took 58–73 ms
 * through it and 30–55 through this path, and grew the agent by 12–18 MiB against 5–13. The path is
 * undici 6's layout; package.json pins undici exactly and test/agent/pooled-origin.test.ts drives
 * requests through it.
 */
const UNDICI_POOL_MODULE = 'undici/lib/dispatcher/pool.js';

/**
 * The requests of a plain http:// origin that carry no body (the request HEADERS carried END: every GET
 * the public side sends), sent through an undici Pool instead of Node's ClientRequest and http.Agent,
 * which were half of the agent's CPU per small request (perf: ClientRequest, the agent's socket pool,
 * its free-socket bookkeeping). undici is the origin client the design card allows (DESIGN.md); it
 * keeps raw header names and values, and its llhttp refuses the same ambiguous framing Node's does.
 * Everything else (bodies, Expect, upgrades, `*` or absolute targets, CONNECT, https) stays with
 * OriginProxy's Node client.
 *
 * Flow: the origin's response is read only as fast as the exchange takes it (onData pauses the
 * socket past POOLED_READ_AHEAD_BYTES), and a failure of the exchange aborts the origin request.
 */
export class PooledOrigin {
  private readonly origin: URL;
  private pool: Pool | undefined;
  /** undici's Pool is loaded with the first request (≈ 20 ms): an agent that serves none, and every agent's start-up, never pay for it. */
  private loading: Promise<Pool> | undefined;
  private closed = false;

  constructor(origin: URL) {
    this.origin = origin;
  }

  private async load(): Promise<Pool> {
    const { default: Pool } = (await import(UNDICI_POOL_MODULE)) as { default: typeof import('undici').Pool };
    // No headers or body timeout: a long poll or an event stream is idle as long as it likes; the
    // edge's idle timeout and the public client decide when an exchange is over.
    this.pool ??= new Pool(this.origin.origin, { pipelining: 1, keepAliveTimeout: POOLED_KEEP_ALIVE_MS, headersTimeout: 0, bodyTimeout: 0 });
    if (this.closed) void this.pool.destroy().catch(() => undefined);
    return this.pool;
  }

  /** Whether a request with this head goes through the pool: no body, an origin-form target, no Expect, not CONNECT. */
  static takes(head: HTTPChunk, headers: readonly Header[]): boolean {
    if (head.end !== true || head.method === 'CONNECT' || !head.target?.startsWith('/')) return false;
    for (const h of headers) {
      const name = h.name.toLowerCase();
      if (name === 'expect' || (name === 'content-length' && h.value.trim() !== '0')) return false;
    }
    return true;
  }

  /** Runs one exchange whose request is `head` alone, already re-targeted (path, Host) for the origin. */
  async serve(method: string, path: string, headers: readonly Header[], exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    const pool = this.pool ?? (await (this.loading ??= this.load()));
    const response = new PooledResponse(pipeline);
    pipeline.onFailed((err) => response.abort(err));
    try {
      const framed = framedFields(headers);
      pool.dispatch({ method: method as Dispatcher.HttpMethod, path, headers: flatFields(framed.headers), body: null }, response);
    } catch (err) {
      // Nothing reached the origin: a head undici refuses (a field that is not valid HTTP).
      pipeline.abort(new ProtocolError('request head is not valid HTTP', { cause: err }), ResetCode.PROTOCOL_ERROR);
      return;
    }
    // Anything after a head that carried END is the peer's protocol error: both directions end at once
    // (the response would otherwise run to its end first).
    const request = requestEnd(exchange).catch((err: unknown) => {
      const e = toError(err);
      response.abort(e);
      pipeline.abort(e, ResetCode.PROTOCOL_ERROR);
      throw e;
    });
    const results = await Promise.allSettled([request, respond(exchange, response)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failed) return;
    const err = toError(failed.reason);
    response.abort(err);
    pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.ORIGIN_ERROR);
  }

  /** Closes the pool's connections. */
  close(): void {
    this.closed = true;
    void this.pool?.destroy().catch(() => undefined);
  }
}

/**
 * Sends the origin's response on the exchange: a small complete one as one folded chunk in the turn
 * it is taken (sendWhole: no sink loop, generator or credit wait), anything else through sink().
 */
async function respond(exchange: ExchangeDuplex, response: PooledResponse): Promise<void> {
  const whole = await response.whole();
  if (whole && exchange.sendWhole?.(whole)) return;
  await exchange.sink(response.chunks(whole));
}

/** Reads the exchange's request to its END: a request sent as its head alone has nothing after it. */
async function requestEnd(exchange: ExchangeDuplex): Promise<void> {
  // The END that rode on the head is already here: taken at once, no pass through the source generator.
  const rest = exchange.takeRest?.() ?? (await firstChunk(exchange.source));
  if (rest.length > 0) throw new ProtocolError(`unexpected ${ChunkKind[rest[0].kind]} chunk after a request head that carried END`);
}

/** The first chunk of `source`, if any, as a list (a request whose head carried END has none). */
async function firstChunk(source: AsyncIterable<HTTPChunk>): Promise<HTTPChunk[]> {
  for await (const chunk of source) return [chunk];
  return [];
}

/** Node's flat rawHeaders ([name, value, …]) from undici's raw Buffers, decoded as Node decodes them (latin1). */
function rawStrings(raw: readonly Buffer[] | readonly string[] | null): string[] {
  if (!raw) return [];
  const out = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    out[i] = typeof v === 'string' ? v : v.toString('latin1');
  }
  return out;
}

/**
 * One origin response as undici hands it over (a dispatch handler), read by the exchange as chunks:
 * HEADERS (folded with its body and END when it is complete by the time the head is taken, as
 * incomingChunks does on Node's client), DATA gathered up to MAX_CHUNK_DATA_BYTES, TRAILERS.
 */
export class PooledResponse implements Dispatcher.DispatchHandlers {
  private head: HTTPChunk | undefined;
  private body: Buffer[] = [];
  private buffered = 0;
  private trailers: string[] | undefined;
  private complete = false;
  private error: Error | undefined;
  private abortRequest: ((err?: Error) => void) | undefined;
  private resumeSocket: (() => void) | undefined;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(private readonly pipeline: ExchangePipeline) {}

  /** Body bytes read from the origin and not yet taken by the exchange (bounded by POOLED_READ_AHEAD_BYTES plus one read). */
  get held(): number {
    return this.buffered;
  }

  /** Ends the origin request now (the exchange failed). Idempotent; a completed response is left alone. */
  abort(err: Error): void {
    if (this.complete || this.error) return;
    this.error = err;
    this.abortRequest?.(err);
    this.notify();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortRequest = abort;
    if (this.error) abort(this.error);
  }

  onError(err: Error): void {
    this.error ??= err;
    this.notify();
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void): boolean {
    // 1xx: no Expect was sent, so nothing waits for a 100; informational heads are not relayed.
    if (statusCode < 200) return true;
    this.resumeSocket = resume;
    this.pipeline.status = statusCode;
    this.head = { kind: ChunkKind.HEADERS, status: statusCode, headers: endToEndFields(rawStrings(headers)) };
    this.notify();
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.body.push(chunk);
    this.buffered += chunk.byteLength;
    this.notify();
    if (this.buffered < POOLED_READ_AHEAD_BYTES) return true;
    this.paused = true;
    return false;
  }

  onComplete(trailers: string[] | null): void {
    this.trailers = rawStrings(trailers);
    this.complete = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private until(ready: () => boolean): Promise<void> | undefined {
    if (ready() || this.error) return undefined;
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  /** The body bytes read so far (up to MAX_CHUNK_DATA_BYTES) as one DATA chunk, counted; resumes a paused socket. */
  private takeBody(): HTTPChunk {
    const chunk = takeDataChunk(this.body, this.buffered);
    const size = chunk.data!.byteLength;
    this.buffered -= size;
    this.pipeline.bytesOut.bytes += size;
    if (this.paused && this.buffered < POOLED_READ_AHEAD_BYTES) {
      this.paused = false;
      this.resumeSocket?.();
    }
    return chunk;
  }

  private trailerChunk(end: boolean): HTTPChunk | undefined {
    const fields = this.trailers && this.trailers.length > 0 ? trailerFields(pairFields(this.trailers)) : [];
    return fields.length > 0 ? { kind: ChunkKind.TRAILERS, headers: fields, ...(end ? { end: true } : {}) } : undefined;
  }

  /**
   * Once the head is here: the whole response as one folded chunk marked `end` when it is complete,
   * small (FOLD_MAX_DATA_BYTES) and has no trailers (its body is then taken); undefined otherwise.
   */
  async whole(): Promise<HTTPChunk | undefined> {
    await this.until(() => this.head !== undefined);
    if (this.trailerChunk(true)) return undefined;
    const folded = this.fold();
    if (folded) folded.end = true;
    return folded;
  }

  /**
   * The head with the whole body folded in (taken), when the response is complete, unbroken and small
   * (FOLD_MAX_DATA_BYTES); undefined otherwise. Not marked `end`: trailers may follow.
   */
  private fold(): HTTPChunk | undefined {
    if (!this.head || !this.complete || this.error || this.buffered > FOLD_MAX_DATA_BYTES) return undefined;
    const folded: HTTPChunk = { ...this.head };
    if (this.buffered > 0) folded.data = this.takeBody().data;
    return folded;
  }

  /** The response as chunks; `whole`, when given, is what whole() took: it is all there is. */
  async *chunks(whole?: HTTPChunk): AsyncGenerator<HTTPChunk> {
    if (whole) {
      yield whole;
      return;
    }
    await this.until(() => this.head !== undefined);
    if (!this.head) {
      const err = this.error!;
      throw new ExchangeResetError(`origin request failed: ${err.message}`, ResetCode.ORIGIN_ERROR, { cause: err });
    }
    // A small response is here whole already: one folded chunk (the sink unfolds it for an edge that does not read them).
    const folded = this.fold();
    if (folded) {
      const trailers = this.trailerChunk(true);
      if (!trailers) folded.end = true;
      yield folded;
      if (trailers) yield trailers;
      return;
    }
    yield this.head;
    for (;;) {
      await this.until(() => this.buffered > 0 || this.complete);
      if (this.error) throw new ExchangeResetError('origin response broke off', ResetCode.ORIGIN_ERROR, { cause: this.error });
      if (this.buffered > 0) {
        yield this.takeBody();
        continue;
      }
      if (this.complete) break;
    }
    const trailers = this.trailerChunk(false);
    if (trailers) yield trailers;
  }
}
