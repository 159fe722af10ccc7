/**
 * DATA chunks written and read by hand: the hot path of every transfer. protobufjs builds a list of
 * write operations per message and copies the payload in `finish()`, and its decoder builds a message
 * object with prototype defaults; for DATA, whose layout is fixed, both cost more than the bytes.
 *
 * The bytes are exactly protobufjs's (fields in number order, proto/tunnel.proto):
 *   HTTPChunk: 08 02 (kind = DATA) · 3a LEN payload (data = 7) · [50 SEQ (seq = 10)]
 *   WsFrame:   08 STREAM (stream = 1) · 12 LEN HTTPChunk (chunk = 2)
 * so a peer decoding with any protobuf library reads them as before. Reading accepts only that layout;
 * anything else (other field order, repeated or unknown fields, over-long varints) returns undefined
 * and the caller decodes it with protobufjs, which keeps its own rules for such frames.
 *
 * A body read into a chunk by gatherData() already sits where its frame will: room is left before and
 * after the payload, and encoding writes the few header bytes there and returns a view, so the payload
 * is copied once on its way from the socket that read it to the transport (the gather), not twice.
 */
import { ChunkKind, dataChunk, type HTTPChunk } from './http-chunk.js';

/** Room gatherData() leaves before a payload: the longest WsFrame header (stream, length) plus HTTPChunk's (kind, length). */
export const FRAME_HEADROOM_BYTES = 2 * (1 + 5) + 3 + 5;
/** Room gatherData() leaves after a payload: the longest seq field. */
export const FRAME_TAILROOM_BYTES = 1 + 5;
/**
 * Buffers made by gatherData(), with the byte length of the payload they were made for (it starts at
 * FRAME_HEADROOM_BYTES). Only a chunk of exactly that payload is framed in place: one cut from it
 * (a subarray) shares bytes with its neighbours, and its header would overwrite theirs.
 */
const gathered = new WeakMap<ArrayBufferLike, number>();

/**
 * The bytes of `parts`, in order, as one DATA chunk whose payload has frame room around it, in a
 * buffer of its own from `alloc` (never a slice of Node's shared pool; default a fresh one).
 */
export function gatherData(parts: readonly Uint8Array[], total: number, alloc: (size: number) => Buffer = Buffer.allocUnsafeSlow): HTTPChunk {
  const buf = alloc(FRAME_HEADROOM_BYTES + total + FRAME_TAILROOM_BYTES);
  let pos = FRAME_HEADROOM_BYTES;
  for (const p of parts) {
    buf.set(p, pos);
    pos += p.byteLength;
  }
  gathered.set(buf.buffer, pos - FRAME_HEADROOM_BYTES);
  return dataChunk(buf.subarray(FRAME_HEADROOM_BYTES, pos));
}

/** Whether `data` is a whole payload of gatherData() (whose room fits any header and tail). */
function hasRoom(data: Uint8Array): boolean {
  return data.byteOffset === FRAME_HEADROOM_BYTES && gathered.get(data.buffer) === data.byteLength;
}

/** Bytes of an unsigned 32-bit varint. */
function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/** The bytes the HTTPChunk of a DATA chunk takes before its payload, and after it (seq). */
function layout(chunk: HTTPChunk): { head: number; tail: number; length: number } {
  const size = chunk.data!.byteLength;
  const head = 3 + varintBytes(size);
  const tail = chunk.seq === undefined || chunk.seq === null ? 0 : 1 + varintBytes(chunk.seq >>> 0);
  return { head, tail, length: head + size + tail };
}

/**
 * Writes the HTTPChunk of DATA `chunk` at `pos` of `buf` (sized by layout()); the payload is the one
 * copy, or none when `buf` already holds it in place (gatherData()).
 */
function writeChunk(buf: Uint8Array, pos: number, chunk: HTTPChunk, payloadInPlace = false): void {
  const data = chunk.data!;
  pos = writeChunkHead(buf, pos, data.byteLength);
  if (!payloadInPlace) buf.set(data, pos);
  writeChunkTail(buf, pos + data.byteLength, chunk);
}

/** The HTTPChunk bytes before a DATA payload of `size` bytes (kind, data's tag and length); the next pos. */
function writeChunkHead(buf: Uint8Array, pos: number, size: number): number {
  buf[pos++] = 0x08;
  buf[pos++] = ChunkKind.DATA;
  buf[pos++] = 0x3a;
  return writeVarint(buf, pos, size);
}

/** The HTTPChunk bytes after a DATA payload: seq, if set. */
function writeChunkTail(buf: Uint8Array, pos: number, chunk: HTTPChunk): void {
  if (chunk.seq !== undefined && chunk.seq !== null) {
    buf[pos++] = 0x50;
    writeVarint(buf, pos, chunk.seq >>> 0);
  }
}

/** The WsFrame bytes before its HTTPChunk of `innerLength` bytes (stream, chunk's tag and length); the next pos. */
function writeWsFrameHead(buf: Uint8Array, pos: number, stream: number, innerLength: number): number {
  buf[pos++] = 0x08;
  pos = writeVarint(buf, pos, stream >>> 0);
  buf[pos++] = 0x12;
  return writeVarint(buf, pos, innerLength);
}

/** Bytes writeWsFrameHead() writes. */
function wsFrameHeadBytes(stream: number, innerLength: number): number {
  return 1 + varintBytes(stream >>> 0) + 1 + varintBytes(innerLength);
}

/**
 * Whether `chunk` is a DATA chunk this file can write: kind, data and at most seq set. Any other field
 * (never set on DATA by Jetty, but the type allows it) goes through protobufjs.
 */
export function isPlainData(chunk: HTTPChunk): boolean {
  if (chunk.kind !== ChunkKind.DATA || !(chunk.data instanceof Uint8Array)) return false;
  for (const key in chunk) {
    if (key !== 'kind' && key !== 'data' && key !== 'seq' && (chunk as unknown as Record<string, unknown>)[key] !== undefined) return false;
  }
  return true;
}

/** Writes the HTTPChunk header and tail around a gathered payload; the frame, as a view of its buffer. */
function inPlace(data: Uint8Array, head: number, length: number): Buffer {
  return Buffer.from(data.buffer, data.byteOffset - head, length);
}

/** The HTTPChunk encoding of a plain DATA chunk (isPlainData): in place if gathered, else in one allocation. */
export function encodeDataChunk(chunk: HTTPChunk): Buffer {
  const { head, length } = layout(chunk);
  if (hasRoom(chunk.data!)) {
    const frame = inPlace(chunk.data!, head, length);
    writeChunk(frame, 0, chunk, true);
    return frame;
  }
  const buf = Buffer.allocUnsafe(length);
  writeChunk(buf, 0, chunk);
  return buf;
}

/** The WsFrame encoding of a plain DATA chunk on `stream`, in one allocation. */
export function encodeWsDataFrame(stream: number, chunk: HTTPChunk): Buffer {
  const inner = layout(chunk);
  const head = wsFrameHeadBytes(stream, inner.length);
  const inPlaceOk = hasRoom(chunk.data!);
  const buf = inPlaceOk ? inPlace(chunk.data!, head + inner.head, head + inner.length) : Buffer.allocUnsafe(head + inner.length);
  writeChunk(buf, writeWsFrameHead(buf, 0, stream, inner.length), chunk, inPlaceOk);
  return buf;
}

/** A WsFrame carrying DATA, as the bytes around its payload (wsDataFrameParts). */
export interface WsDataFrameParts {
  /** Free room (roomFor), then the WsFrame and HTTPChunk bytes before the payload. */
  head: Buffer;
  /** The bytes after the payload (seq), or undefined when there are none. */
  tail: Buffer | undefined;
  /** Bytes of the whole WsFrame (head without its room, payload, tail). */
  length: number;
}

/**
 * The WsFrame encoding of a plain DATA chunk (isPlainData) on `stream`, without its payload: for a
 * writer that sends head, payload and tail as they are (one writev) rather than copying the payload
 * into one buffer. `roomFor(length)` bytes are left free at the start of `head` (the header of a
 * WebSocket frame of that many bytes).
 */
export function wsDataFrameParts(stream: number, chunk: HTTPChunk, roomFor: (length: number) => number): WsDataFrameParts {
  const inner = layout(chunk);
  const outer = wsFrameHeadBytes(stream, inner.length);
  const room = roomFor(outer + inner.length);
  const head = Buffer.allocUnsafe(room + outer + inner.head);
  writeChunkHead(head, writeWsFrameHead(head, room, stream, inner.length), chunk.data!.byteLength);
  let tail: Buffer | undefined;
  if (inner.tail > 0) {
    tail = Buffer.allocUnsafe(inner.tail);
    writeChunkTail(tail, 0, chunk);
  }
  return { head, tail, length: outer + inner.length };
}

/** A varint of at most 5 bytes below 2^32 at `pos`, as [value, next pos]; undefined if not one. */
function readVarint(buf: Uint8Array, pos: number, end: number): [number, number] | undefined {
  let value = 0;
  for (let i = 0; i < 5 && pos < end; i++) {
    const byte = buf[pos++];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) return value <= 0xffffffff ? [value, pos] : undefined;
  }
  return undefined;
}

/** Reads `buf[start, end)` as the HTTPChunk of a DATA chunk laid out as above; data is a view, not a copy. */
function readChunk(buf: Uint8Array, start: number, end: number): HTTPChunk | undefined {
  if (end - start < 4 || buf[start] !== 0x08 || buf[start + 1] !== ChunkKind.DATA || buf[start + 2] !== 0x3a) return undefined;
  const len = readVarint(buf, start + 3, end);
  if (!len || len[0] > end - len[1]) return undefined;
  const dataEnd = len[1] + len[0];
  const chunk: HTTPChunk = { kind: ChunkKind.DATA, data: Buffer.from(buf.buffer, buf.byteOffset + len[1], len[0]) };
  if (dataEnd === end) return chunk;
  if (buf[dataEnd] !== 0x50) return undefined;
  const seq = readVarint(buf, dataEnd + 1, end);
  if (!seq || seq[1] !== end) return undefined;
  chunk.seq = seq[0];
  return chunk;
}

/** `bytes` as a DATA HTTPChunk if laid out as this file writes it, else undefined. Not validated. */
export function readDataChunk(bytes: Uint8Array): HTTPChunk | undefined {
  return readChunk(bytes, 0, bytes.byteLength);
}

/** `bytes` as a WsFrame carrying a DATA chunk if laid out as this file writes it, else undefined. Not validated. */
export function readWsDataFrame(bytes: Uint8Array): { stream: number; chunk: HTTPChunk } | undefined {
  if (bytes.byteLength < 2 || bytes[0] !== 0x08) return undefined;
  const stream = readVarint(bytes, 1, bytes.byteLength);
  if (!stream || bytes[stream[1]] !== 0x12) return undefined;
  const len = readVarint(bytes, stream[1] + 1, bytes.byteLength);
  if (!len || len[0] !== bytes.byteLength - len[1]) return undefined;
  const chunk = readChunk(bytes, len[1], bytes.byteLength);
  return chunk && { stream: stream[0], chunk };
}
