import { ChunkKind, END_CHUNK, isFolded, type HTTPChunk } from '../codec/http-chunk.js';

/**
 * What every chunk costs against a WebSocket credit window beyond its bytes: a queued chunk holds an
 * object, a buffer view and a queue slot whatever its size, so empty DATA, TRAILERS and repeated
 * HEADERS use up credit too and a peer cannot queue them without limit.
 */
export const CHUNK_OVERHEAD_BYTES = 64;
/** What each header line costs beyond its name and value bytes (the `{ name, value }` object). */
export const FIELD_OVERHEAD_BYTES = 32;
/**
 * Most chunks one exchange may hold for its reader. The per-chunk cost grows with the window
 * (`chunkOverheadBytes`), so a sender that keeps to its credit never reaches this bound.
 */
export const MAX_QUEUED_CHUNKS = 16_384;

/**
 * The fixed cost of one chunk under a receive window of `windowBytes`: CHUNK_OVERHEAD_BYTES, or more
 * when a window full of empty chunks would exceed MAX_QUEUED_CHUNKS. Both sides compute it from the
 * receiver's announced window.
 */
export function chunkOverheadBytes(windowBytes: number): number {
  return Math.max(CHUNK_OVERHEAD_BYTES, Math.ceil(windowBytes / MAX_QUEUED_CHUNKS));
}

/** Credit `chunk` costs: `overhead`, its DATA bytes, and each header line's bytes plus FIELD_OVERHEAD_BYTES. */
export function chunkCost(chunk: HTTPChunk, overhead: number): number {
  let n = overhead + (chunk.data?.byteLength ?? 0);
  for (const h of chunk.headers ?? []) n += FIELD_OVERHEAD_BYTES + Buffer.byteLength(h.name) + Buffer.byteLength(h.value);
  return n;
}

/**
 * The fields of a received chunk its reader uses, and nothing else: what is queued is exactly what
 * was charged (a peer's stray `reason` or `target` on a DATA chunk is not kept).
 */
export function bareChunk(chunk: HTTPChunk): HTTPChunk {
  switch (chunk.kind) {
    case ChunkKind.DATA:
      return chunk.end ? { kind: chunk.kind, data: chunk.data, end: true } : { kind: chunk.kind, data: chunk.data };
    case ChunkKind.HEADERS:
      // A folded head keeps its first DATA and END (both were charged: chunkCost counts its data).
      return isFolded(chunk)
        ? { kind: chunk.kind, status: chunk.status, headers: chunk.headers ?? [], data: (chunk.data?.byteLength ?? 0) > 0 ? chunk.data : undefined, end: chunk.end === true }
        : { kind: chunk.kind, status: chunk.status, headers: chunk.headers ?? [] };
    case ChunkKind.TRAILERS:
      return chunk.end ? { kind: chunk.kind, headers: chunk.headers ?? [], end: true } : { kind: chunk.kind, headers: chunk.headers ?? [] };
    case ChunkKind.END:
      return END_CHUNK;
    default:
      return chunk;
  }
}
