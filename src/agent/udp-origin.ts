import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { ChunkKind, ExchangeKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { DATAGRAM_BATCH_HEADER, decodeBatch, MAX_DATAGRAM_BYTES, offersBatching } from '../codec/datagram-batch.js';
import { ExchangeResetError, ProtocolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DatagramQueue, datagramChunks, type ByteBudget } from '../streams/datagram-queue.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { waitForEvent, type AbortOptions } from '../wait.js';
import type { RequestRecord } from './origin-proxy.js';
import { PORT_ANSWER, servePortExchange } from './port-exchange.js';

/** Largest UDP payload (IPv4: 65,535 − 8 UDP − 20 IP header bytes), shared with the batch framing. One DATA chunk carries it whole. */
export { MAX_DATAGRAM_BYTES };

/**
 * The kernel receive buffer asked for on each flow's origin socket (capped by net.core.rmem_max):
 * a burst of replies to a batch waits there, outside the JS heap, while the event loop is busy.
 * Kernel memory used only while replies wait; the edge's ports ask for the same.
 */
export const UDP_ORIGIN_RECV_BUFFER_BYTES = 1024 * 1024;

/** Replies from the origin one flow holds while the tunnel cannot take them; beyond: dropped (UDP may lose them). */
export const UDP_REPLY_QUEUE_DATAGRAMS = 256;
/**
 * Reply bytes all the flows of the agent hold together while the tunnel cannot take them; beyond: dropped.
 * The count bound alone was flows × 256 × 64 KiB: public clients opening many flows to an origin that
 * answers in large datagrams, over a tunnel slower than the origin, grew the agent to gigabytes.
 */
export const UDP_REPLY_QUEUE_BYTES = 16 * 1024 * 1024;

export interface UdpOriginInit {
  host: string;
  port: number;
  logger: Logger;
}

/**
 * Serves the `datagram` exchanges of a UDP tunnel: one connected dgram socket to the origin per
 * exchange (per public flow), so the origin's replies go back to the flow they answer. Each DATA is
 * one datagram both ways, or a batch of them when the edge's open offers `Jetty-Datagram-Batch`
 * (accepted by echoing it in the 200; codec/datagram-batch.ts); replies wait in a DatagramQueue of UDP_REPLY_QUEUE_DATAGRAMS and are
 * dropped (counted in the flow's log line and in droppedDatagrams()) beyond it. The edge ends a flow (its idle timeout) with RESET.
 */
export class UdpOrigin {
  private readonly init: UdpOriginInit;
  /** What every flow's reply queue holds, at most UDP_REPLY_QUEUE_BYTES. */
  private readonly queued: ByteBudget = { bytes: 0, max: UDP_REPLY_QUEUE_BYTES };
  /** Replies dropped by every flow since the start (each flow's log line has its own). */
  private dropped = 0;
  onRequest: ((entry: RequestRecord) => void) | undefined;

  constructor(init: UdpOriginInit) {
    this.init = init;
  }

  /** Handles one exchange (one public flow); resolves when it is over, never rejects. */
  async serve(head: HTTPChunk, exchange: ExchangeDuplex, options: AbortOptions = {}): Promise<void> {
    const fields = { kind: 'udp', dropped: 0 };
    const entry = await servePortExchange(head, exchange, { kind: ExchangeKind.DATAGRAM, logger: this.init.logger, fields }, (p) => this.relay(exchange, p, fields, offersBatching(head.headers)), options);
    this.onRequest?.(entry);
  }

  /** `batching`: the edge offered datagram batching, so this side accepts it (both directions). */
  private async relay(exchange: ExchangeDuplex, pipeline: ExchangePipeline, fields: { dropped: number }, batching: boolean): Promise<void> {
    const { host, port } = this.init;
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const replies = new DatagramQueue(UDP_REPLY_QUEUE_DATAGRAMS, this.queued);
    socket.on('error', (err) => pipeline.abort(new ExchangeResetError(`origin socket failed: ${err.message}`, ResetCode.ORIGIN_ERROR, { cause: err }), ResetCode.ORIGIN_ERROR));
    socket.on('message', (msg) => {
      if (!replies.push(msg)) {
        fields.dropped++;
        this.dropped++;
      }
    });
    const closeSocket = (): void => {
      replies.discard();
      try {
        socket.close();
      } catch {
        // Closed already.
      }
    };
    pipeline.onFailed(closeSocket);
    try {
      const connected = waitForEvent(socket, 'connect', { signal: pipeline.failed });
      // `jetty udp 53` means localhost: an udp4 socket cannot reach the ::1 that name may resolve to first.
      socket.connect(port, host === 'localhost' ? '127.0.0.1' : host);
      await connected;
      try {
        socket.setRecvBufferSize(UDP_ORIGIN_RECV_BUFFER_BYTES);
      } catch {
        // The system's default buffer then: bursts beyond it are lost at the socket, as without a tunnel.
      }
      const counter = pipeline.bytesOut;
      async function* answer(): AsyncGenerator<HTTPChunk> {
        yield batching ? { ...PORT_ANSWER, headers: [DATAGRAM_BATCH_HEADER] } : PORT_ANSWER;
        yield* datagramChunks(replies, batching, counter);
      }
      const upload = async (): Promise<void> => {
        for await (const chunk of exchange.source) {
          if (chunk.kind !== ChunkKind.DATA) throw new ProtocolError('unexpected chunk in a datagram flow');
          // One DATA is one datagram (or a batch): anything larger than UDP can carry is the edge's protocol error.
          if (!batching && chunk.data!.byteLength > MAX_DATAGRAM_BYTES) throw new ProtocolError(`datagram of more than ${MAX_DATAGRAM_BYTES} bytes`);
          for (const d of batching ? decodeBatch(chunk.data!) : [chunk.data!]) {
            pipeline.bytesIn.bytes += d.byteLength;
            socket.send(d);
          }
        }
        // The edge ended its side: no reply can reach anyone any more.
        replies.close();
      };
      pipeline.status = 200;
      // The edge's fault (a malformed batch, an oversize datagram) resets the flow at once: the
      // answer may be waiting for a reply that never comes, and the flow must not wait for it.
      const uploaded = upload().catch((err: unknown) => {
        if (err instanceof ProtocolError) pipeline.abort(err, ResetCode.PROTOCOL_ERROR);
        throw err;
      });
      const results = await Promise.allSettled([exchange.sink(answer()), uploaded]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      closeSocket();
    }
  }

  /** Replies dropped at the bounds (UDP_REPLY_QUEUE_DATAGRAMS per flow, UDP_REPLY_QUEUE_BYTES in all) since the start. */
  droppedDatagrams(): number {
    return this.dropped;
  }

  /** Reply bytes queued in every flow now. */
  bufferedBytes(): number {
    return this.queued.bytes;
  }

  close(): void {}
}
