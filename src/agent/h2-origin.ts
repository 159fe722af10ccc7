import { validateHeaderName, validateHeaderValue } from 'node:http';
import {
  connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { ChunkKind, dataChunk, ResetCode, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { framedFields, endToEndHeaders, trailerFields } from '../codec/http-fields.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';
import { AbortError, ExchangeResetError, ProtocolError, TransportClosedError, toError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { pumpBody, waitDrain, type BodyTarget } from '../streams/http-sink.js';

/**
 * Most HTTP/2 streams the agent keeps open to one origin at once; a server that advertises fewer
 * (SETTINGS_MAX_CONCURRENT_STREAMS) gets fewer. Exchanges beyond it wait for a stream to finish.
 */
export const H2_ORIGIN_MAX_CONCURRENT_STREAMS = 128;
/**
 * HTTP/2 window the agent grants each origin stream: the most response bytes one stalled exchange holds
 * in the agent (DESIGN.md §5: a stalled Http2Stream holds its whole window whatever its highWaterMark).
 */
export const H2_ORIGIN_STREAM_WINDOW_BYTES = 1024 * 1024;
/** HTTP/2 window of the whole origin connection, shared by its streams. */
export const H2_ORIGIN_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

/** An interim 100 (Continue) response head. */
const CONTINUE_HEAD: HTTPChunk = Object.freeze({ kind: ChunkKind.HEADERS, status: 100, headers: [] }) as HTTPChunk;

/** A request method: an RFC 9110 token. */
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A request target or authority: visible ASCII, no space (RFC 9112 §3.2; Node's HTTP/1.1 client refuses the rest). */
const PATH_CHARS = /^[\x21-\x7e]+$/;

/** Fields HTTP/2 forbids in a message (RFC 9113 §8.2.2) beyond the hop-by-hop ones framedFields drops. */
const H2_FORBIDDEN_FIELDS: ReadonlySet<string> = new Set(['host', 'http2-settings']);

export interface H2OriginInit {
  /** The origin, `h2c://host:port` (its path, if any, is applied by the caller). */
  origin: URL;
}

export interface H2RequestInit {
  /** `:authority`: the Host the exchange carries, or the host-header setting's value. */
  authority: string;
  /** `:path` on the origin (base path applied). */
  path: string;
}

/**
 * The agent's HTTP/2 client for one origin (`h2c://`, prior knowledge: gRPC servers). One session is
 * shared by every exchange and made again when it goes away (GOAWAY, error, close); each exchange is one
 * stream. Streams in flight are capped by H2_ORIGIN_MAX_CONCURRENT_STREAMS and by the server's own
 * SETTINGS, whichever is lower: a waiting exchange holds no stream and no window.
 *
 * Teardown order (close): the session is destroyed (its streams end with an error, which resets their
 * exchanges as ORIGIN_ERROR), then exchanges waiting for a stream are refused.
 */
export class H2Origin {
  private readonly authority: string;
  private session: ClientHttp2Session | undefined;
  private active = 0;
  private readonly waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private closed = false;

  constructor(init: H2OriginInit) {
    const port = init.origin.port || '80';
    this.authority = `http://${init.origin.hostname}:${port}`;
  }

  /** The live session, made on first use and again after the last one went away. */
  private current(): ClientHttp2Session {
    const live = this.session;
    if (live && !live.closed && !live.destroyed) return live;
    const session = connect(this.authority, {
      settings: { enablePush: false, initialWindowSize: H2_ORIGIN_STREAM_WINDOW_BYTES },
    });
    const forget = (): void => {
      if (this.session === session) this.session = undefined;
      // A smaller limit may come with the next session; those waiting re-check it then.
      this.wake();
    };
    // Errors reach the exchanges through their streams; this listener only keeps them handled.
    session.on('error', () => undefined);
    session.once('goaway', forget);
    session.once('close', forget);
    session.once('connect', () => session.setLocalWindowSize(H2_ORIGIN_CONNECTION_WINDOW_BYTES));
    session.on('remoteSettings', () => this.wake());
    this.session = session;
    return session;
  }

  /** The concurrent-stream limit now: ours, or the server's when lower. */
  private limit(): number {
    const remote = this.session?.remoteSettings?.maxConcurrentStreams;
    return Math.max(1, Math.min(H2_ORIGIN_MAX_CONCURRENT_STREAMS, remote ?? H2_ORIGIN_MAX_CONCURRENT_STREAMS));
  }

  private wake(): void {
    while (this.waiting.length > 0 && this.active < this.limit()) {
      this.active++;
      this.waiting.shift()!.resolve();
    }
  }

  /** Takes a stream slot, waiting while the cap is reached; a failed exchange stops waiting. */
  private async acquire(pipeline: ExchangePipeline): Promise<void> {
    if (this.closed) throw new TransportClosedError('origin client closed');
    if (this.active < this.limit()) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const entry = { resolve, reject };
      this.waiting.push(entry);
      pipeline.onFailed((err) => {
        const at = this.waiting.indexOf(entry);
        if (at !== -1) {
          this.waiting.splice(at, 1);
          reject(err);
        }
      });
    });
  }

  private release(): void {
    this.active--;
    this.wake();
  }

  /**
   * Serves one exchange whose request HEADERS are `head` as one HTTP/2 stream; resolves when it is over,
   * never rejects (failures abort the exchange through `pipeline`).
   */
  async serve(head: HTTPChunk, init: H2RequestInit, exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    let headers: OutgoingHttpHeaders;
    let length: number | undefined;
    try {
      ({ headers, length } = requestHeaders(head, init));
    } catch (err) {
      return pipeline.abort(new ProtocolError('request head is not valid HTTP', { cause: err }), ResetCode.PROTOCOL_ERROR);
    }
    try {
      await this.acquire(pipeline);
    } catch {
      // The exchange failed while waiting (its reset is already on the way), or the client closed.
      return pipeline.abort(new TransportClosedError('origin client closed'), ResetCode.ORIGIN_ERROR);
    }
    try {
      let stream: ClientHttp2Stream;
      try {
        stream = this.current().request(headers, { endStream: false, waitForTrailers: true });
      } catch (err) {
        // Node refuses the head (a field HTTP/2 cannot carry) or the session is already going away.
        return pipeline.abort(new ProtocolError('request head cannot be sent over HTTP/2', { cause: err }), ResetCode.PROTOCOL_ERROR);
      }
      await relay(stream, length, exchange, pipeline);
    } finally {
      this.release();
    }
  }

  /** Destroys the session (streams in flight end as origin errors) and refuses those waiting. */
  close(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
    for (const w of this.waiting.splice(0)) w.reject(new TransportClosedError('origin client closed'));
  }
}

/**
 * The HTTP/2 request headers of `head`: pseudo-headers from method, path and authority; the exchange's
 * fields re-framed as for HTTP/1.1 (framedFields: hop-by-hop and Transfer-Encoding go), without Host
 * (it is `:authority` now); `te: trailers` always, since the tunnel carries trailers and gRPC servers
 * may require it. Repeated fields stay repeated (an array).
 */
export function requestHeaders(head: HTTPChunk, init: H2RequestInit): { headers: OutgoingHttpHeaders; length: number | undefined } {
  const { headers: fields, length } = framedFields(head.headers ?? []);
  const method = head.method ?? 'GET';
  // Node's HTTP/2 client checks none of the pseudo-header values: a peer's CR/LF or space would reach nghttp2.
  if (!METHOD_TOKEN.test(method)) throw new ProtocolError('request method is not a token');
  if (!PATH_CHARS.test(init.path) || !PATH_CHARS.test(init.authority)) throw new ProtocolError('request target or authority has characters HTTP forbids');
  const headers: OutgoingHttpHeaders = {
    [h2.HTTP2_HEADER_METHOD]: method,
    [h2.HTTP2_HEADER_SCHEME]: 'http',
    [h2.HTTP2_HEADER_AUTHORITY]: init.authority,
    [h2.HTTP2_HEADER_PATH]: init.path,
  };
  addFields(headers, fields.filter((h) => !H2_FORBIDDEN_FIELDS.has(h.name.toLowerCase())));
  headers[h2.HTTP2_HEADER_TE] = 'trailers';
  return { headers, length };
}

/**
 * Adds `fields` to an HTTP/2 header object, lower-cased, repeats as arrays. Node's HTTP/2 client passes
 * CR/LF in a value on to nghttp2, so every name and value is checked here as HTTP/1.1 checks them
 * (throws; a pseudo-header from a peer is refused too).
 */
function addFields(out: OutgoingHttpHeaders, fields: readonly Header[]): void {
  for (const h of fields) {
    validateHeaderName(h.name);
    validateHeaderValue(h.name, h.value);
    const name = h.name.toLowerCase();
    const prior = out[name];
    out[name] = prior === undefined ? h.value : [...(Array.isArray(prior) ? prior : [String(prior)]), h.value];
  }
}

/** Node's header object (pseudo-headers removed, arrays spread) as the exchange's field list. */
function fieldList(headers: IncomingHttpHeaders): Header[] {
  const out: Header[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push({ name, value: v });
    else out.push({ name, value: String(value) });
  }
  return endToEndHeaders(out);
}

/** Runs both directions of one exchange against `stream`; a failure of either aborts both. */
async function relay(stream: ClientHttp2Stream, length: number | undefined, exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
  // Failures surface through the response pipeline; this keeps a late 'error' from being unhandled.
  stream.on('error', () => undefined);
  // A reset from the edge (the public client went away) is a CANCEL the origin's handler sees.
  pipeline.onFailed(() => {
    if (!stream.closed) stream.close(h2.NGHTTP2_CANCEL);
  });
  const fail = (reason: unknown): void => {
    if (!stream.closed) stream.close(h2.NGHTTP2_CANCEL);
    const err = toError(reason);
    pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.ORIGIN_ERROR);
  };
  // An upload refused half-way (a wrong length) ends both directions; an origin that answered without
  // reading the body (it reset the request side, NO_ERROR) leaves its response to finish.
  const upload = writeStreamBody(stream, exchange.source[Symbol.asyncIterator](), length, pipeline).catch((err: unknown) => {
    if (err instanceof ProtocolError) fail(err);
  });
  const results = await Promise.allSettled([upload, exchange.sink(responseChunks(stream, pipeline))]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) fail(failed.reason);
}

/**
 * The request body: DATA written with backpressure (a `false` write waits for 'drain': the stream's
 * window), TRAILERS sent as HTTP/2 trailers once the last DATA is out (`waitForTrailers`), an empty
 * END_STREAM otherwise. A body longer or shorter than its Content-Length is a ProtocolError.
 */
async function writeStreamBody(stream: ClientHttp2Stream, chunks: AsyncIterator<HTTPChunk>, length: number | undefined, pipeline: ExchangePipeline): Promise<void> {
  let trailers: Header[] = [];
  const target: BodyTarget = {
    write: (data) => {
      if (stream.closed || stream.destroyed) throw new TransportClosedError('origin stream closed while writing');
      if (!stream.write(data)) return waitDrain(stream);
    },
    trailers: (fields) => (trailers = fields),
  };
  await pumpBody(chunks, target, { length, counter: pipeline.bytesIn });
  if (stream.closed || stream.destroyed) return;
  stream.once('wantTrailers', () => {
    const out: OutgoingHttpHeaders = {};
    try {
      addFields(out, trailers);
      stream.sendTrailers(out);
    } catch {
      // A trailer field HTTP/2 refuses: the origin sees the request cut, never complete without it.
      stream.close(h2.NGHTTP2_PROTOCOL_ERROR);
    }
  });
  stream.end();
}

/** gRPC status fields of a response head: trailers of a Trailers-Only answer (gRPC over HTTP/2 spec). */
const GRPC_STATUS_FIELDS: ReadonlySet<string> = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin']);

/** The gRPC status fields of a head that ended its stream, when it is a gRPC answer; else none. */
function trailersOnlyStatus(fields: readonly Header[]): Header[] {
  const grpc = fields.some((f) => f.name === 'content-type' && f.value.startsWith('application/grpc'));
  return grpc ? fields.filter((f) => GRPC_STATUS_FIELDS.has(f.name)) : [];
}

/**
 * The response head. A stream reset with CANCEL (or NO_ERROR) closes without an 'error' event, so
 * 'close' before 'response' rejects too: the exchange must not wait for a head that will never come.
 */
function responseHead(stream: ClientHttp2Stream): Promise<{ headers: IncomingHttpHeaders; endStream: boolean }> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      stream.off('response', onResponse);
      stream.off('close', onClose);
      stream.off('error', onError);
    };
    const onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
      done();
      resolve({ headers, endStream: (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0 });
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      done();
      reject(new AbortError(`origin closed the stream before its response (HTTP/2 code ${stream.rstCode ?? '-'})`));
    };
    stream.on('response', onResponse);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * The response as chunks: HEADERS (a trailers-only answer, END_STREAM on its headers, is just a head),
 * DATA pulled as the exchange asks (the stream's window is the bound), then TRAILERS if the origin sent
 * any (`grpc-status`, `grpc-message`). A stream that ends by RST_STREAM is an origin error.
 */
async function* responseChunks(stream: ClientHttp2Stream, pipeline: ExchangePipeline): AsyncGenerator<HTTPChunk> {
  let trailers: IncomingHttpHeaders | undefined;
  stream.once('trailers', (t: IncomingHttpHeaders) => (trailers = t));
  let head: { headers: IncomingHttpHeaders; endStream: boolean };
  const final = responseHead(stream);
  // A 100 Continue the origin sends (the client asked with Expect) goes on before the final head.
  const continued = new Promise<boolean>((resolve) => stream.once('continue', () => resolve(true)));
  const first = await Promise.race([continued, final.then(() => false, () => false)]);
  stream.removeAllListeners('continue');
  if (first) yield CONTINUE_HEAD;
  try {
    head = await final;
  } catch (err) {
    throw new ExchangeResetError(`origin request failed: ${toError(err).message}`, ResetCode.ORIGIN_ERROR, { cause: err });
  }
  const status = Number(head.headers[h2.HTTP2_HEADER_STATUS]);
  pipeline.status = status;
  const fields = fieldList(head.headers);
  const grpcStatus = head.endStream ? trailersOnlyStatus(fields) : [];
  yield { kind: ChunkKind.HEADERS, status, headers: grpcStatus.length > 0 ? fields.filter((f) => !grpcStatus.includes(f)) : fields };
  // The next hop cannot send a head with END_STREAM (it flushes the head before it knows the end):
  // the status goes as trailers, which a gRPC client reads the same way.
  if (grpcStatus.length > 0) return void (yield { kind: ChunkKind.TRAILERS, headers: grpcStatus });
  try {
    for await (const buf of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      pipeline.bytesOut.bytes += buf.byteLength;
      for (let off = 0; off < buf.byteLength; off += MAX_CHUNK_DATA_BYTES) yield dataChunk(buf.subarray(off, off + MAX_CHUNK_DATA_BYTES));
    }
  } catch (err) {
    throw new ExchangeResetError('origin response broke off', ResetCode.ORIGIN_ERROR, { cause: err });
  }
  if (stream.rstCode !== undefined && stream.rstCode !== h2.NGHTTP2_NO_ERROR) {
    throw new ExchangeResetError(`origin reset the stream (HTTP/2 code ${stream.rstCode})`, ResetCode.ORIGIN_ERROR, {
      cause: new AbortError('RST_STREAM'),
    });
  }
  if (trailers) {
    const fields = trailerFields(fieldList(trailers));
    if (fields.length > 0) yield { kind: ChunkKind.TRAILERS, headers: fields };
  }
}
