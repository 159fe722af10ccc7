import type { OutgoingMessage, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { constants as h2constants, Http2ServerResponse } from 'node:http2';
import { ChunkKind, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { flatFields, framedFields, trailerFields } from '../codec/http-fields.js';
import { ProtocolError, TransportClosedError } from '../errors.js';
import type { ByteCounter } from './http-source.js';

/**
 * Whether the message can take no more bytes. An HTTP/2 compatibility response (a public h2 stream
 * passed as a ServerResponse) has no `destroyed` of its own: its stream's says it.
 */
export function isClosed(out: OutgoingMessage | Writable): boolean {
  return out instanceof Http2ServerResponse ? (out as Http2ServerResponse).stream.destroyed : out.destroyed;
}

/**
 * Whether the message went out whole. An HTTP/2 compatibility response emits 'finish' and reports
 * writableFinished even when the client reset its stream: the stream's RST code tells the two apart.
 */
export function completed(out: OutgoingMessage): boolean {
  if (!out.writableFinished) return false;
  return !(out instanceof Http2ServerResponse) || (out as Http2ServerResponse).stream.rstCode === h2constants.NGHTTP2_NO_ERROR;
}

/** Adds trailer fields, repeats kept: HTTP/1.1 takes pairs, an HTTP/2 compatibility response a field object. */
function addTrailerFields(out: OutgoingMessage, fields: readonly Header[]): void {
  if (!(out instanceof Http2ServerResponse)) {
    out.addTrailers(fields.map((h) => [h.name, h.value] as [string, string]));
    return;
  }
  const trailers: Record<string, string[]> = {};
  for (const h of fields) (trailers[h.name.toLowerCase()] ??= []).push(h.value);
  (out as Http2ServerResponse).addTrailers(trailers);
}

/** Resolves at `out`'s next 'drain'; rejects with TransportClosedError if it closes first (a message or a socket). */
export function waitDrain(out: OutgoingMessage | Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // A stream closed between the write and here emits no 'close' any more.
    if (isClosed(out)) {
      reject(new TransportClosedError('peer closed while writing'));
      return;
    }
    const onDrain = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('drain', onDrain);
      reject(new TransportClosedError('peer closed while writing'));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

export interface WriteBodyOptions {
  counter?: ByteCounter;
  /**
   * The body length the head declared (0 for a message that has no body). DATA beyond it, or an end
   * short of it, is a ProtocolError thrown before `out` ends: the caller destroys `out`, so the next
   * hop sees a cut message, never a complete one followed by bytes it would read as another message.
   */
  length?: number;
}

/** Where pumpBody puts a body: an HTTP/1.1 outgoing message, an HTTP/2 stream. */
export interface BodyTarget {
  /** Writes one DATA chunk; resolves when more may be written (backpressure). */
  write(data: Uint8Array): Promise<void> | void;
  /** Takes the trailer section (trailerFields already applied). */
  trailers(fields: Header[]): void;
}

/**
 * Moves DATA and TRAILERS from `chunks` into `target`, checking the declared length; does not end the
 * message (the caller does, in its framing's way). Throws ProtocolError on any other chunk kind or a
 * body longer or shorter than `length`.
 */
export async function pumpBody(chunks: AsyncIterator<HTTPChunk>, target: BodyTarget, options: WriteBodyOptions = {}): Promise<void> {
  const { counter, length } = options;
  let written = 0;
  for (;;) {
    const { value: chunk, done } = await chunks.next();
    if (done) break;
    if (chunk.kind === ChunkKind.DATA) {
      const data = chunk.data!;
      written += data.byteLength;
      if (length !== undefined && written > length) throw new ProtocolError(`body runs past its declared length of ${length} bytes`);
      if (counter) counter.bytes += data.byteLength;
      await target.write(data);
    } else if (chunk.kind === ChunkKind.TRAILERS) {
      target.trailers(trailerFields(chunk.headers ?? []));
    } else {
      throw new ProtocolError(`unexpected ${ChunkKind[chunk.kind]} chunk in a body`);
    }
  }
  if (length !== undefined && written < length) throw new ProtocolError(`body ended ${length - written} bytes short of its declared length`);
}

/**
 * Writes DATA and TRAILERS to an outgoing message (origin request or public response) with
 * backpressure: at most one `write()` beyond the socket's high-water mark is in flight. Trailers are
 * filtered (trailerFields). Ends the message when `chunks` is done.
 */
export async function writeBody(out: OutgoingMessage, chunks: AsyncIterator<HTTPChunk>, options: WriteBodyOptions = {}): Promise<void> {
  await pumpBody(
    chunks,
    {
      write: (data) => {
        if (isClosed(out)) throw new TransportClosedError('peer closed while writing');
        if (!out.write(data)) return waitDrain(out);
      },
      trailers: (fields) => {
        try {
          addTrailerFields(out, fields);
        } catch (err) {
          throw new ProtocolError('trailer field is not valid HTTP', { cause: err });
        }
      },
    },
    options,
  );
  await endMessage(out);
}

/**
 * Ends an outgoing message and resolves once it is finished. `end(callback)` alone never calls back
 * when the message fails first (an origin that refuses the connection), so 'close' settles it too.
 */
function endMessage(out: OutgoingMessage, last?: Uint8Array): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (isClosed(out)) {
      reject(new TransportClosedError('peer closed before the end of the body'));
      return;
    }
    const onFinish = (): void => {
      out.off('close', onClose);
      if (completed(out)) resolve();
      else reject(new TransportClosedError('peer reset the stream before the end of the body'));
    };
    const onClose = (): void => {
      out.off('finish', onFinish);
      if (completed(out)) resolve();
      else reject(new TransportClosedError('peer closed before the end of the body'));
    };
    out.once('finish', onFinish);
    out.once('close', onClose);
    if (last) out.end(last);
    else out.end();
  });
}

/**
 * Sends the head at the end of this turn of the event loop unless the first body chunk is already
 * here or a body write has sent it by then: a client still sees the status of an event stream or long
 * poll before any body exists, while a small message leaves as one write. Flushing at once cost a
 * socket write per exchange: a transport delivers HEADERS and the first DATA as separate messages
 * (grpc-js pushes each after a promise), so the body was never "ready" when the head was written,
 * though it arrived in the same turn.
 */
export function flushHeadUnlessBodyReady(out: OutgoingMessage, bodyReady: () => boolean): void {
  if (!bodyReady()) setImmediate(flushHeadIfUnsent, out);
}

function flushHeadIfUnsent(out: OutgoingMessage): void {
  // `headersSent` is true from writeHead() on for HTTP/1.1 (the head is stored, not sent); `_headerSent`
  // says whether it went out. An HTTP/2 compatibility response has only `headersSent`, which means sent.
  const sent = (out as { _headerSent?: boolean })._headerSent ?? out.headersSent;
  if (!sent && !out.writableEnded && !isClosed(out)) out.flushHeaders();
}

/**
 * The body of a message whose rest is `rest`, when it is at most one DATA (no trailers) whose size
 * matches `length` (or no length was declared): what can go out as one `end(body)`. Undefined for
 * anything else, which takes the checked chunk-by-chunk way.
 */
function wholeBody(rest: readonly HTTPChunk[], length: number | undefined): Uint8Array | undefined {
  if (rest.length > 1) return undefined;
  const data = rest.length === 0 ? EMPTY : rest[0].kind === ChunkKind.DATA ? rest[0].data! : undefined;
  if (!data || (length !== undefined && data.byteLength !== length)) return undefined;
  return data;
}

const EMPTY = new Uint8Array(0);

/** Responses that never have a body, whatever their head says (RFC 9110 §6.4.1). */
function bodyless(res: ServerResponse, status: number): boolean {
  return res.req.method === 'HEAD' || status === 204 || status === 304;
}

/** The next response HEADERS of `chunks`, checked: a ProtocolError unless it is HEADERS with a status from 100 to 599. */
export async function responseHead(chunks: AsyncIterator<HTTPChunk>): Promise<HTTPChunk> {
  const { value: head, done } = await chunks.next();
  if (done) throw new ProtocolError('response ended before its HEADERS');
  const status = head.status ?? 0;
  if (head.kind !== ChunkKind.HEADERS || !Number.isInteger(status) || status < 100 || status > 599) {
    throw new ProtocolError('response must start with HEADERS carrying a status from 100 to 599');
  }
  return head;
}

/**
 * Writes a response (HEADERS, DATA*, [TRAILERS]) to a public client. 1xx HEADERS (100 Continue) are
 * relayed before the final head. The head is re-framed (framedFields): hop-by-hop fields and
 * Transfer-Encoding go, one Content-Length at most stays and the body must match it. A head that is
 * not valid HTTP (ambiguous length, bad status or field) is a ProtocolError before anything is sent.
 * If `chunks` throws, the caller destroys `res`: the client then sees a cut message, never a
 * complete-looking one.
 */
export async function writeResponse(
  res: ServerResponse,
  chunks: AsyncIterator<HTTPChunk>,
  bodyReady: () => boolean,
  counter?: ByteCounter,
  takeRest?: (accept: (rest: readonly HTTPChunk[]) => boolean) => HTTPChunk[] | undefined,
): Promise<number> {
  for (;;) {
    const head = await responseHead(chunks);
    const status = head.status!;
    if (status < 200) {
      if (status === 100) res.writeContinue();
      continue;
    }
    const { headers, length: framed } = framedFields(head.headers ?? []);
    const length = bodyless(res, status) ? 0 : framed;
    try {
      res.writeHead(status, flatFields(headers));
    } catch (err) {
      throw new ProtocolError('response head field is not valid HTTP', { cause: err });
    }
    // The whole response is already here (a small answer folded into one message): the head and the
    // body leave in one end(), with no promise per chunk. It is taken only once the head is valid and
    // only when it will be written as it is: anything else (trailers, a length that does not match) is
    // read through the source the checked way, so a refused one fails the exchange and the agent gets
    // its RESET. The origin's framing stays: a response sent without Content-Length is still chunked.
    let whole: Uint8Array | undefined;
    if (takeRest?.((parts) => (whole = wholeBody(parts, length)) !== undefined) && whole) {
      if (counter) counter.bytes += whole.byteLength;
      await endMessage(res, whole.byteLength > 0 ? whole : undefined);
      return status;
    }
    flushHeadUnlessBodyReady(res, bodyReady);
    try {
      await writeBody(res, chunks, { counter, length });
    } catch (err) {
      // A head still waiting for the end of its turn goes now: the caller then sees a started response
      // and cuts it (RST_STREAM on HTTP/2), as when the head had gone out at once, rather than taking
      // it for unanswered and sending an error page in its place.
      flushHeadIfUnsent(res);
      throw err;
    }
    return status;
  }
}
