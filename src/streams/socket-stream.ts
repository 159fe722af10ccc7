import type { Socket } from 'node:net';
import { ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';
import { AbortError, ProtocolError, toError } from '../errors.js';
import type { ExchangeDuplex } from './exchange-duplex.js';
import type { ExchangePipeline } from './exchange-pipeline.js';
import type { ByteCounter } from './http-source.js';
import { resetSocket, socketChunks, writeSocket } from './socket-pipe.js';

export { resetSocket };

/**
 * The highWaterMark of every tunnel TCP socket (edge and agent), both directions, bytes: how far it
 * reads ahead of its exchange, and how much it buffers for writing before writeChunks waits for drain.
 */
export const SOCKET_HIGH_WATER_BYTES = 64 * 1024;

/**
 * Most bytes one tunnelled TCP connection holds in its socket buffers: the write buffer and the one
 * chunk written past it, and the read-ahead (Node stops reading at the mark, after a read of up to
 * 64 KiB: twice the mark). The transport's window (gRPC, WebSocket credit) is the rest of a
 * connection's memory, as for an HTTP body.
 */
export const MAX_SOCKET_BUFFERED_BYTES = 3 * SOCKET_HIGH_WATER_BYTES + MAX_CHUNK_DATA_BYTES;

/** Socket options with the tunnel's highWaterMark (Node 20 honours it; its typings do not list it). */
export function tunnelSocketOptions<T extends object>(options: T): T {
  return { ...options, highWaterMark: SOCKET_HIGH_WATER_BYTES };
}

export interface RelaySocketOptions {
  /** Chunks the sink sends before the socket's bytes: the edge's open HEADERS, the agent's 200. */
  head: HTTPChunk;
  /** Where the socket's bytes are counted (edge: bytesIn, from the public client; agent: bytesOut). */
  readCounter: ByteCounter;
  /** Where the peer's bytes are counted. */
  writeCounter: ByteCounter;
  /** The reset code when the local socket fails (edge: CANCEL, the client went away; agent: ORIGIN_ERROR). */
  socketFailure: ResetCode;
  /** Checks the peer's first chunk before any byte reaches the socket (the edge: the agent's 200). */
  checkFirst?: (chunk: HTTPChunk) => void;
}

/**
 * Runs both directions of a `stream` exchange over `socket` until both have ended: socket → exchange
 * (FIN → END) and exchange → socket (END → FIN), each with backpressure. A reset on either side resets
 * the other: the socket's error aborts the exchange (RESET to the peer), the peer's RESET (or the
 * session's loss) resets the socket (RST). Rejects with the exchange's error.
 */
export async function relaySocket(socket: Socket, exchange: ExchangeDuplex, pipeline: ExchangePipeline, options: RelaySocketOptions): Promise<void> {
  const { head, readCounter, writeCounter, socketFailure, checkFirst } = options;
  // A reset from the peer must reach the socket even when neither direction is waiting on it.
  pipeline.onFailed(() => resetSocket(socket));
  // Kept for the socket's life: an 'error' after the relay (a late RST) must not go unhandled.
  socket.on('error', (err: Error) => pipeline.abort(new AbortError('connection reset', { cause: err }), socketFailure));
  async function* upload(): AsyncGenerator<HTTPChunk> {
    yield head;
    yield* socketChunks(socket, undefined, readCounter);
  }
  const download = async (): Promise<void> => {
    const chunks = exchange.source[Symbol.asyncIterator]();
    if (checkFirst) {
      const first = await chunks.next();
      if (first.done) throw new ProtocolError('stream ended before its HEADERS');
      checkFirst(first.value);
    }
    await writeSocket(socket, chunks, writeCounter);
  };
  try {
    const results = await Promise.allSettled([exchange.sink(upload()), download()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const err = toError(failed.reason);
      // A RESET from the peer has ended the exchange already (abort is then a no-op).
      pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : socketFailure);
      resetSocket(socket);
      throw exchange.error ?? err;
    }
  } catch (err) {
    resetSocket(socket);
    throw err;
  }
}
