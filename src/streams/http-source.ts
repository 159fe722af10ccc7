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
): AsyncGenerator<HTTPChunk> {
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
