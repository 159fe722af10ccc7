import { ProtocolError } from '../errors.js';
import { MAX_CHUNK_DATA_BYTES } from './tunnel-codec.js';

/**
 * Datagram batching on a `datagram` exchange: several UDP datagrams in one DATA chunk, so a busy
 * flow pays the per-chunk cost (one gRPC message / one WebSocket frame, one trip through the
 * exchange pipeline) once per batch instead of once per datagram.
 *
 * Negotiated per exchange so DESIGN.md §6.1 ("each DATA is one datagram") still holds for a peer
 * that does not opt in: the edge's open HEADERS carries `Jetty-Datagram-Batch: 1`; an agent that
 * supports batching echoes it in its 200 HEADERS. Only then does either side send batches, and
 * then every DATA of that exchange, both ways, is a batch: one or more entries, each a 2-byte
 * big-endian length (≤ MAX_DATAGRAM_BYTES; 0 is an empty datagram) followed by that many bytes.
 */

/** The field of the open HEADERS (edge's offer) and of the 200 HEADERS (agent's acceptance). */
export const DATAGRAM_BATCH_FIELD = 'Jetty-Datagram-Batch';
/** The one framing version defined: 2-byte length prefixes. */
export const DATAGRAM_BATCH_VERSION = '1';
/** Largest UDP payload (IPv4: 65,535 − 8 UDP − 20 IP header bytes); a 2-byte length holds it. */
export const MAX_DATAGRAM_BYTES = 65_507;
/** Bytes of each entry's length prefix. */
export const DATAGRAM_LENGTH_BYTES = 2;
/**
 * Most bytes a sender puts in one batch (prefixes included) when it holds more than one datagram;
 * a lone datagram larger than this still goes whole, in a batch of its own (≤ 65,509 bytes).
 * Either way a batch stays within MAX_CHUNK_DATA_BYTES, every buffer bound's unit.
 */
export const DATAGRAM_BATCH_BYTES = 64 * 1024;
if (DATAGRAM_BATCH_BYTES > MAX_CHUNK_DATA_BYTES || DATAGRAM_LENGTH_BYTES + MAX_DATAGRAM_BYTES > MAX_CHUNK_DATA_BYTES) {
  throw new Error('a datagram batch must fit in one DATA chunk');
}

/** Whether `headers` carry the batching field with the version this code speaks. */
export function offersBatching(headers: ReadonlyArray<{ name: string; value: string }> | undefined): boolean {
  return !!headers?.some((h) => h.name.toLowerCase() === DATAGRAM_BATCH_FIELD.toLowerCase() && h.value.trim() === DATAGRAM_BATCH_VERSION);
}

/** The header to put in an open or a 200 HEADERS to offer or accept batching. */
export const DATAGRAM_BATCH_HEADER = Object.freeze({ name: DATAGRAM_BATCH_FIELD, value: DATAGRAM_BATCH_VERSION });

/** The bytes `datagram` takes in a batch. */
export function batchedSize(datagram: Uint8Array): number {
  return DATAGRAM_LENGTH_BYTES + datagram.byteLength;
}

/** One DATA payload holding `datagrams` (each ≤ MAX_DATAGRAM_BYTES, at least one). */
export function encodeBatch(datagrams: readonly Uint8Array[]): Buffer {
  if (datagrams.length === 0) throw new RangeError('a batch holds at least one datagram');
  let total = 0;
  for (const d of datagrams) {
    if (d.byteLength > MAX_DATAGRAM_BYTES) throw new RangeError(`datagram of more than ${MAX_DATAGRAM_BYTES} bytes`);
    total += batchedSize(d);
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const d of datagrams) {
    out.writeUInt16BE(d.byteLength, off);
    out.set(d, off + DATAGRAM_LENGTH_BYTES);
    off += batchedSize(d);
  }
  return out;
}

/**
 * The datagrams of one batch DATA, as views of `data` (no copies). Strict: an empty DATA, a length
 * above MAX_DATAGRAM_BYTES, a length that runs past the chunk or a trailing byte too short
 * for a length prefix is the peer's ProtocolError (the exchange is reset, as for oversize DATA).
 */
export function decodeBatch(data: Uint8Array): Buffer[] {
  if (data.byteLength === 0) throw new ProtocolError('empty datagram batch');
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.byteLength) {
    if (buf.byteLength - off < DATAGRAM_LENGTH_BYTES) throw new ProtocolError('datagram batch ends inside a length prefix');
    const n = buf.readUInt16BE(off);
    off += DATAGRAM_LENGTH_BYTES;
    if (n > MAX_DATAGRAM_BYTES) throw new ProtocolError(`batched datagram of ${n} bytes, more than ${MAX_DATAGRAM_BYTES}`);
    if (n > buf.byteLength - off) throw new ProtocolError(`batched datagram of ${n} bytes runs past the chunk (${buf.byteLength - off} left)`);
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}
