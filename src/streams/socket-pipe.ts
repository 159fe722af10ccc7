import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChunkKind, type HTTPChunk } from '../codec/http-chunk.js';
import { ProtocolError, TransportClosedError, AbortError } from '../errors.js';
import { waitDrain } from './http-sink.js';
import { dataChunks, readableData, type ByteCounter } from './http-source.js';

/**
 * Raw bytes of a connection as the DATA of a `stream` exchange's direction, and back: a switched
 * connection (an upgraded HTTP/1.1 socket, DESIGN.md §6.2) on both ends of an upgrade, and a TCP
 * tunnel's public and origin connections (socket-stream.ts).
 *
 * Bounds: reading pulls one socket read at a time (the socket's readable high-water mark, 16 KiB by
 * default, is what waits here); writing has at most one chunk (MAX_CHUNK_DATA_BYTES) beyond the
 * socket's writable high-water mark before it waits for 'drain'.
 */

/**
 * `first` (bytes that came with the head, such as the `head` of Node's 'upgrade' event), then what
 * `socket` reads, as DATA chunks no larger than MAX_CHUNK_DATA_BYTES. Ends at the peer's FIN (the
 * caller's sink then sends END: a half-close); throws AbortError when the socket breaks first.
 * Pull-based: the socket is read only as fast as the consumer asks.
 */
export async function* socketChunks(socket: Duplex, first: Uint8Array | undefined, counter?: ByteCounter): AsyncGenerator<HTTPChunk> {
  if (first && first.byteLength > 0) {
    if (counter) counter.bytes += first.byteLength;
    yield* dataChunks(first);
  }
  try {
    // Stopping early leaves the socket to its owner: the other direction may still be running.
    yield* readableData(socket, counter);
  } catch (err) {
    throw new AbortError('connection broke off', { cause: err });
  }
}

/**
 * Writes the DATA of `chunks` to `socket` with backpressure and half-closes it (`end()`) when they end.
 * Any other chunk kind is a ProtocolError: after a switch both directions are raw bytes.
 */
export async function writeSocket(socket: Duplex, chunks: AsyncIterator<HTTPChunk>, counter?: ByteCounter): Promise<void> {
  for (;;) {
    const { value: chunk, done } = await chunks.next();
    if (done) break;
    if (chunk.kind !== ChunkKind.DATA) throw new ProtocolError(`unexpected ${ChunkKind[chunk.kind]} chunk in a stream of raw bytes`);
    const data = chunk.data!;
    if (socket.destroyed) throw new TransportClosedError('socket closed while writing');
    if (counter) counter.bytes += data.byteLength;
    if (!socket.write(data)) await waitDrain(socket);
  }
  if (!socket.destroyed) socket.end();
}

/**
 * Resets a raw connection (a switched upgrade, a TCP tunnel's) so the peer can tell, once: a TCP RST
 * (ECONNRESET on its side) rather than the FIN that `destroy()` sends, which would read as a clean end.
 * Destroyed instead: a socket that cannot reset (TLS, one still connecting), and one whose FIN is still
 * being written (on Node 20 resetAndDestroy() during a pending shutdown never emits 'close', so the
 * connection would be counted as open for ever and a drain would wait out its whole grace period).
 */
export function resetSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  const tcp = socket as Socket;
  try {
    if (typeof tcp.resetAndDestroy === 'function' && !tcp.connecting && !(socket.writableEnded && !socket.writableFinished)) {
      tcp.resetAndDestroy();
      return;
    }
  } catch {
    // Not a TCP handle (a TLS socket): fall through.
  }
  socket.destroy();
}
