import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { ChunkKind, ExchangeKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { AbortError, ProtocolError, TunnelNotFoundError, toError } from '../errors.js';
import { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { relaySocket, resetSocket, tunnelSocketOptions } from '../streams/socket-stream.js';
import { waitForEvent } from '../wait.js';
import type { PortListenerInit } from './port-tunnels.js';

/** Default cap on open public connections per TCP tunnel (beyond: reset at once, counted). */
export const DEFAULT_TCP_MAX_CONNECTIONS = 256;
/** Default `tcp-idle-timeout`: a connection with no byte either way for this long is reset, ms. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

/** The fixed method and target of a stream or datagram exchange's open HEADERS (proto/tunnel.proto TunnelKind). */
export const PORT_EXCHANGE_METHOD = 'CONNECT';
export const PORT_EXCHANGE_TARGET = '*';

/** The open HEADERS of the exchange that carries one public connection or flow: who it comes from. */
export function portExchangeHead(kind: ExchangeKind, client: { address: string; port: number }, server: { address: string; port: number }): HTTPChunk {
  return {
    kind: ChunkKind.HEADERS,
    exchangeId: randomUUID(),
    method: PORT_EXCHANGE_METHOD,
    target: PORT_EXCHANGE_TARGET,
    exchangeKind: kind,
    headers: [
      { name: 'Jetty-Client-Address', value: client.address },
      { name: 'Jetty-Client-Port', value: String(client.port) },
      { name: 'Jetty-Server-Address', value: server.address },
      { name: 'Jetty-Server-Port', value: String(server.port) },
    ],
  };
}

/** The agent's answer to a stream or datagram open: HEADERS 200 once its origin socket is up. */
export function checkPortAnswer(chunk: HTTPChunk): void {
  if (chunk.kind !== ChunkKind.HEADERS || chunk.status !== 200) throw new ProtocolError('stream answered without HEADERS 200');
}

export interface TcpListenerInit extends PortListenerInit {
  /** Default DEFAULT_TCP_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Default DEFAULT_TCP_MAX_CONNECTIONS. */
  maxConnections?: number;
}

/**
 * One TCP tunnel's public port: each accepted connection becomes one `stream` exchange on the
 * tunnel's session (registry lookup, or a wait for its reconnecting agent, then openExchange, so the
 * per-agent caps and queue apply), relayed with relaySocket until both directions end or one resets.
 * Teardown order (abort): stop accepting → every connection reset (its exchange gets RESET through
 * the pipeline) → `closed`.
 */
export class TcpListener extends EventEmitter<{ idle: [] }> {
  private readonly server: Server;
  private readonly init: TcpListenerInit;
  private readonly sockets = new Set<Socket>();

  private constructor(init: TcpListenerInit, server: Server) {
    super();
    this.init = init;
    this.server = server;
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on `init.host:init.port`; rejects (EADDRINUSE…) when the port cannot be had. */
  static async listen(init: TcpListenerInit): Promise<TcpListener> {
    // allowHalfOpen: a client's FIN is END on the exchange, and the origin's answer still flows back.
    const server = createServer(tunnelSocketOptions({ allowHalfOpen: true, noDelay: true }));
    const listening = waitForEvent(server, 'listening');
    server.listen({ host: init.host, port: init.port, exclusive: true });
    await listening;
    return new TcpListener(init, server);
  }

  /** Public connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Bytes held in the open connections' socket buffers (both directions): the slow-reader bound's test reads it. */
  bufferedBytes(): number {
    let n = 0;
    for (const s of this.sockets) n += s.writableLength + s.readableLength;
    return n;
  }

  /** Drain: no new connections; the open ones go on. */
  stopAccepting(): void {
    this.server.close();
  }

  /** Stops accepting and resets every open connection. Idempotent. */
  abort(): void {
    this.server.close();
    for (const s of this.sockets) resetSocket(s);
  }

  private accept(socket: Socket): void {
    const { maxConnections = DEFAULT_TCP_MAX_CONNECTIONS, metrics } = this.init;
    socket.on('error', () => undefined);
    if (this.sockets.size >= maxConnections) {
      metrics.limitRejections.inc({ limit: 'tcp_connections' });
      socket.resetAndDestroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size === 0) this.emit('idle');
    });
    void this.relay(socket);
  }

  /** One connection, from its exchange's open to its log line; never rejects. */
  private async relay(socket: Socket): Promise<void> {
    const { registry, key, reconnectGraceMs, logger, metrics, idleTimeoutMs = DEFAULT_TCP_IDLE_TIMEOUT_MS } = this.init;
    const head = portExchangeHead(
      ExchangeKind.STREAM,
      { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
      { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    );
    const fields = { tunnel: key, kind: 'tcp', transport: 'none' };
    const pipeline = new ExchangePipeline({ id: head.exchangeId, method: head.method, path: head.target, logger, fields });
    const gone = new AbortController();
    const onGone = (): void => gone.abort(new AbortError('public client went away'));
    socket.once('close', onGone);
    // No bytes either way for idleTimeoutMs (the socket's timer sees both): the connection is reset.
    socket.setTimeout(idleTimeoutMs, pipeline.idleAction(idleTimeoutMs));
    let failure: Error | undefined;
    try {
      const session = registry.lookup(key) ?? (await registry.waitFor(key, reconnectGraceMs));
      if (!session) throw new TunnelNotFoundError('the agent of this port is gone');
      fields.transport = session.transport;
      const exchange = pipeline.attach(await session.openExchange(head, { signal: gone.signal }));
      socket.off('close', onGone);
      await relaySocket(socket, exchange, pipeline, {
        head,
        readCounter: pipeline.bytesIn,
        writeCounter: pipeline.bytesOut,
        socketFailure: ResetCode.CANCEL,
        checkFirst: (chunk) => {
          checkPortAnswer(chunk);
          pipeline.status = 200;
        },
      });
    } catch (err) {
      failure = toError(err);
      resetSocket(socket);
    } finally {
      socket.off('close', onGone);
      socket.setTimeout(0);
    }
    const entry = pipeline.finish(failure);
    metrics.tcpConnections.inc({ result: failure ? ((failure as { code?: string }).code ?? 'ERR_INTERNAL') : 'ok' });
    metrics.tunnelBytes.inc({ kind: 'tcp', direction: 'in' }, entry.bytesIn);
    metrics.tunnelBytes.inc({ kind: 'tcp', direction: 'out' }, entry.bytesOut);
    metrics.tunnelDuration.observe({ kind: 'tcp' }, entry.ms / 1000);
  }
}
