import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { ChunkKind, dataChunk, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { pairFields, trailerFields } from '../codec/http-fields.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';
import { AbortError } from '../errors.js';
import { GatheringReader } from './gathering-reader.js';

/** Counts body bytes as they pass (for the request log). */
export interface ByteCounter {
  bytes: number;
}

/** `buf` as DATA chunks of at most MAX_CHUNK_DATA_BYTES (the codec refuses larger ones). */
export function* dataChunks(buf: Uint8Array): Generator<HTTPChunk> {
  if (buf.byteLength <= MAX_CHUNK_DATA_BYTES) {
    yield dataChunk(buf);
    return;
  }
  for (let off = 0; off < buf.byteLength; off += MAX_CHUNK_DATA_BYTES) yield dataChunk(buf.subarray(off, off + MAX_CHUNK_DATA_BYTES));
}

/**
 * What `stream` reads, as DATA chunks of whatever was read by the time the consumer asks (up to
 * MAX_CHUNK_DATA_BYTES: GatheringReader), counted; read ahead by at most GATHER_HIGH_WATER_BYTES.
 * Stopping early leaves the stream to its owner; a stream that breaks throws its error.
 */
export async function* readableData(stream: Readable, counter?: ByteCounter): AsyncGenerator<HTTPChunk> {
  const reader = new GatheringReader(stream);
  try {
    for (let chunk = await reader.next(); chunk !== null; chunk = await reader.next()) {
      if (counter) counter.bytes += chunk.data!.byteLength;
      yield chunk;
    }
  } finally {
    reader.release();
  }
}

/**
 * Most body bytes a folded head carries (proto/tunnel.proto `end`): a message complete by the time its
 * head is sent, with at most this much body, goes as one chunk. Bounded by what Node already holds
 * for the message (its highWaterMark, 16 KiB, unless one packet brought more).
 */
export const FOLD_MAX_DATA_BYTES = 64 * 1024;

export interface IncomingChunksOptions {
  /**
   * A message already complete when its head is pulled (a small response, read in one go) is one
   * folded chunk, HEADERS{data, end}, and TRAILERS carry `end`; the exchange's sink unfolds them for a
   * peer that does not read folded chunks. Default false.
   */
  fold?: boolean;
}

/**
 * An incoming HTTP message (a public request on the edge, an origin response on the agent) as
 * chunks: `head`, then DATA as it arrives, then TRAILERS if any, filtered by `trailers` (default
 * trailerFields). Pull-based: the socket is read only as fast as the consumer asks (the bound is
 * readableData's read-ahead plus the message's highWaterMark, 16 KiB by default).
 * Throws AbortError if the peer goes away before the message is complete.
 */
export async function* incomingChunks(
  msg: IncomingMessage,
  head: HTTPChunk,
  counter?: ByteCounter,
  trailers: (fields: readonly Header[]) => Header[] = trailerFields,
  options: IncomingChunksOptions = {},
): AsyncGenerator<HTTPChunk> {
  if (options.fold && msg.complete && msg.readableLength <= FOLD_MAX_DATA_BYTES) {
    yield* completeMessage(msg, head, counter, trailers);
    return;
  }
  yield head;
  try {
    // Stopping early leaves the message to its owner: the public response may still be flushing.
    yield* readableData(msg, counter);
  } catch (err) {
    throw new AbortError('peer went away mid-message', { cause: err });
  }
  if (!msg.complete) throw new AbortError('message ended before it was complete');
  if (msg.rawTrailers.length > 0) {
    const headers = trailers(pairFields(msg.rawTrailers));
    if (headers.length > 0) yield { kind: ChunkKind.TRAILERS, headers };
  }
}

/**
 * A message Node has wholly parsed (`complete`), as folded chunks: its head carrying the body Node
 * holds and END, or, with trailers, that head and the TRAILERS carrying END. Reading the body out also
 * lets the message emit 'end', which gives a keep-alive socket back to its pool.
 */
function completeMessage(msg: IncomingMessage, head: HTTPChunk, counter: ByteCounter | undefined, trailers: (fields: readonly Header[]) => Header[]): HTTPChunk[] {
  const body = msg.read() as Buffer | null;
  const folded: HTTPChunk = { ...head };
  if (body && body.byteLength > 0) {
    if (counter) counter.bytes += body.byteLength;
    folded.data = body;
  }
  const fields = msg.rawTrailers.length > 0 ? trailers(pairFields(msg.rawTrailers)) : [];
  if (fields.length === 0) return [{ ...folded, end: true }];
  return [folded, { kind: ChunkKind.TRAILERS, headers: fields, end: true }];
}
