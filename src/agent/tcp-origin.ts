import { connect } from 'node:net';
import { ExchangeKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { ExchangeResetError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { relaySocket, resetSocket, tunnelSocketOptions } from '../streams/socket-stream.js';
import { waitForEvent, type AbortOptions } from '../wait.js';
import type { RequestRecord } from './origin-proxy.js';
import { PORT_ANSWER, servePortExchange } from './port-exchange.js';
import { peersOf, proxyHeader, type ProxyProtocolVersion } from './proxy-protocol.js';

/** How long the agent waits for its TCP origin to accept a connection, ms (beyond: RESET ORIGIN_ERROR). */
export const TCP_ORIGIN_CONNECT_TIMEOUT_MS = 10_000;

export interface TcpOriginInit {
  host: string;
  port: number;
  logger: Logger;
  /** Send the public client's address first, as a PROXY protocol header of this version. */
  proxyProtocol?: ProxyProtocolVersion;
}

/**
 * Serves the `stream` exchanges of a TCP tunnel: one origin connection per exchange (per public
 * connection), opened when the exchange arrives. HEADERS 200 goes back once it is up (RESET
 * ORIGIN_ERROR when it cannot be), then relaySocket runs both directions: FIN ↔ END, reset ↔ RESET,
 * the transport's flow control on each side.
 */
export class TcpOrigin {
  private readonly init: TcpOriginInit;
  /** Called after every exchange (the agent's status view listens here). */
  onRequest: ((entry: RequestRecord) => void) | undefined;

  constructor(init: TcpOriginInit) {
    this.init = init;
  }

  /** Handles one exchange opened by `head`; resolves when it is over, never rejects. */
  async serve(head: HTTPChunk, exchange: ExchangeDuplex, options: AbortOptions = {}): Promise<void> {
    const entry = await servePortExchange(head, exchange, { kind: ExchangeKind.STREAM, logger: this.init.logger, fields: { kind: 'tcp' } }, (p) => this.relay(head, exchange, p), options);
    this.onRequest?.(entry);
  }

  private async relay(head: HTTPChunk, exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    const { host, port, proxyProtocol } = this.init;
    // Checked before the origin is dialled: a bad head never opens a connection.
    const preamble = proxyProtocol ? proxyHeader(proxyProtocol, peersOf(head.headers ?? [])) : undefined;
    const socket = connect(tunnelSocketOptions({ host, port, allowHalfOpen: true, noDelay: true }));
    socket.on('error', () => undefined);
    // The exchange may end (a reset from the edge) while the origin is still being dialled.
    pipeline.onFailed(() => resetSocket(socket));
    try {
      await waitForEvent(socket, 'connect', { timeoutMs: TCP_ORIGIN_CONNECT_TIMEOUT_MS, signal: pipeline.failed });
    } catch (err) {
      resetSocket(socket);
      throw new ExchangeResetError(`origin ${host}:${port} refused the connection: ${toError(err).message}`, ResetCode.ORIGIN_ERROR, { cause: err });
    }
    if (preamble) socket.write(preamble);
    pipeline.status = 200;
    await relaySocket(socket, exchange, pipeline, {
      head: PORT_ANSWER,
      readCounter: pipeline.bytesOut,
      writeCounter: pipeline.bytesIn,
      socketFailure: ResetCode.ORIGIN_ERROR,
    });
  }

  /** Nothing pooled: each exchange owns its connection and closes it. */
  close(): void {}
}
