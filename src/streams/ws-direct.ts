import type { Socket } from 'node:net';
import { wsDataFrameParts } from '../codec/data-chunk.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import { gatherPool } from './gathering-reader.js';

/** RFC 6455 §5.2: FIN set, opcode 2 (binary). */
const FIN_BINARY = 0x82;
const MASK_BIT = 0x80;

/** Bytes of the WebSocket frame header of a `length`-byte payload. */
function wsHeaderBytes(length: number, masked: boolean): number {
  return 2 + (length < 126 ? 0 : length < 0x10000 ? 2 : 8) + (masked ? 4 : 0);
}

/**
 * Writes the header of an unfragmented binary frame of `length` bytes at the start of `buf`; a masked
 * frame (client to server) gets a zero masking key, so its payload goes out as it is.
 */
function writeWsHeader(buf: Buffer, length: number, masked: boolean): void {
  buf[0] = FIN_BINARY;
  const mask = masked ? MASK_BIT : 0;
  let pos = 2;
  if (length < 126) buf[1] = mask | length;
  else if (length < 0x10000) {
    buf[1] = mask | 126;
    pos = buf.writeUInt16BE(length, 2);
  } else {
    buf[1] = mask | 127;
    buf.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    pos = buf.writeUInt32BE(length >>> 0, 6);
  }
  if (masked) buf.fill(0, pos, pos + 4);
}

/**
 * Writes DATA `chunk` on `stream` as one WebSocket message straight to the TCP socket under `ws`:
 * a small buffer (WebSocket header, WsFrame and HTTPChunk bytes), the payload as it is, and the seq
 * tail if any, which the socket sends together (it is corked for the turn: WsMux.corkForTurn).
 * `ws.send()` takes one buffer, so the payload had to be copied next to its protobuf header first
 * (unless it was gathered with room for it): on a bulk transfer that was one fresh 256 KiB buffer
 * and copy per chunk, and the external memory it allocated drove most of the sender's garbage
 * collections. The bytes on the wire are the same.
 *
 * Only for a socket whose `ws` sender writes synchronously (no permessage-deflate, no Blob sends,
 * both true of WsMux's sockets), so no frame of its own can be queued behind ours or between our
 * parts. Bytes written here count in `ws.bufferedAmount` (it reads the socket's write queue).
 *
 * Once the socket has taken the bytes, a gathered payload's buffer goes back to gatherPool: the
 * chunk was this exchange's to send, and nothing reads it after the send.
 */
export function writeDirectData(raw: Socket, stream: number, chunk: HTTPChunk, masked: boolean, onWritten: () => void): void {
  const payload = chunk.data!;
  const { head, tail, length } = wsDataFrameParts(stream, chunk, (n) => wsHeaderBytes(n, masked));
  writeWsHeader(head, length, masked);
  const written = (): void => {
    gatherPool.giveBack(payload);
    onWritten();
  };
  raw.write(head);
  if (tail) {
    raw.write(payload);
    raw.write(tail, written);
  } else raw.write(payload, written);
}
