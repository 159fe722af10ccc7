import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { ChunkKind, dataChunk, ExchangeKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { ExchangeResetError, ProtocolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DatagramQueue, type ByteBudget } from '../streams/datagram-queue.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { waitForEvent, type AbortOptions } from '../wait.js';
import type { RequestRecord } from './origin-proxy.js';
import { PORT_ANSWER, servePortExchange } from './port-exchange.js';

/** Largest UDP payload (IPv4: 65,535 − 8 − 20); the edge's MAX_DATAGRAM_BYTES (edge and agent import nothing of each other). */
export const MAX_DATAGRAM_BYTES = 65_507;

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
 * one datagram both ways; replies wait in a DatagramQueue of UDP_REPLY_QUEUE_DATAGRAMS and are
 * dropped (counted in the flow's log line) beyond it. The edge ends a flow (its idle timeout) with RESET.
 */
export class UdpOrigin {
  private readonly init: UdpOriginInit;
  /** What every flow's reply queue holds, at most UDP_REPLY_QUEUE_BYTES. */
  private readonly queued: ByteBudget = { bytes: 0, max: UDP_REPLY_QUEUE_BYTES };
  onRequest: ((entry: RequestRecord) => void) | undefined;

  constructor(init: UdpOriginInit) {
    this.init = init;
  }

  /** Handles one exchange (one public flow); resolves when it is over, never rejects. */
  async serve(head: HTTPChunk, exchange: ExchangeDuplex, options: AbortOptions = {}): Promise<void> {
    const fields = { kind: 'udp', dropped: 0 };
    const entry = await servePortExchange(head, exchange, { kind: ExchangeKind.DATAGRAM, logger: this.init.logger, fields }, (p) => this.relay(exchange, p, fields), options);
    this.onRequest?.(entry);
  }

  private async relay(exchange: ExchangeDuplex, pipeline: ExchangePipeline, fields: { dropped: number }): Promise<void> {
    const { host, port } = this.init;
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const replies = new DatagramQueue(UDP_REPLY_QUEUE_DATAGRAMS, this.queued);
    socket.on('error', (err) => pipeline.abort(new ExchangeResetError(`origin socket failed: ${err.message}`, ResetCode.ORIGIN_ERROR, { cause: err }), ResetCode.ORIGIN_ERROR));
    socket.on('message', (msg) => {
      if (!replies.push(msg)) fields.dropped++;
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
      const counter = pipeline.bytesOut;
      async function* answer(): AsyncGenerator<HTTPChunk> {
        yield PORT_ANSWER;
        for await (const d of replies) {
          counter.bytes += d.byteLength;
          yield dataChunk(d);
        }
      }
      const upload = async (): Promise<void> => {
        for await (const chunk of exchange.source) {
          if (chunk.kind !== ChunkKind.DATA) throw new ProtocolError('unexpected chunk in a datagram flow');
          // One DATA is one datagram: anything larger than UDP can carry is the edge's protocol error.
          if (chunk.data!.byteLength > MAX_DATAGRAM_BYTES) throw new ProtocolError(`datagram of more than ${MAX_DATAGRAM_BYTES} bytes`);
          pipeline.bytesIn.bytes += chunk.data!.byteLength;
          socket.send(chunk.data!);
        }
        // The edge ended its side: no reply can reach anyone any more.
        replies.close();
      };
      pipeline.status = 200;
      const results = await Promise.allSettled([exchange.sink(answer()), upload()]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      closeSocket();
    }
  }

  /** Reply bytes queued in every flow now. */
  bufferedBytes(): number {
    return this.queued.bytes;
  }

  close(): void {}
}
