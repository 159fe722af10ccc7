import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TunnelDirectory } from '../actors/cluster.js';
import type { Registry, TunnelSession } from '../actors/registry.js';
import { ChunkKind, EXCHANGE_KIND_NAMES, exchangeKindOf, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, WS_PROTOCOL_PROTO } from '../codec/ws-frame.js';
import { AgentBusyError, EdgeUnavailableError, ExchangeResetError, MisdirectedError, ProtocolError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { countData, ExchangePipeline } from '../streams/exchange-pipeline.js';
import { WsMux } from '../streams/ws-mux.js';
import { waitForEvent } from '../wait.js';
import { PerAddressLimit } from './client-limits.js';
import type { EdgeMetrics } from './metrics.js';
import { PEER_NONCE_HEADER, PEER_PATH, peerAnswerHeaders, PeerHandshakes } from './peer-auth.js';
import { takeForwardFields } from './peer-fields.js';
import { keepAlive, PEER_PING_INTERVAL_MS } from './peer-link.js';
import { isPeerSession } from './peer-session.js';
import type { TlsIdentity } from './public-listener.js';

/** Open connections one address may hold on the peer listener (authenticated or not): a cluster needs one per edge. */
export const MAX_PEER_CONNECTIONS_PER_ADDRESS = 8;
/**
 * Forwarded exchanges in flight on one peer connection; beyond, RESET UNAVAILABLE (503 at the
 * forwarder). With the credit window per exchange, what one peer connection can hold here is at most
 * this × `ws-window` (256 MiB at the default 1 MiB).
 */
export const MAX_PEER_EXCHANGES_PER_CONNECTION = 256;
/** How long a closing edge waits for a peer to finish the WebSocket close handshake, ms. */
export const PEER_CLOSE_TIMEOUT_MS = 1_000;
/** WebSocket close code "going away" (RFC 6455): the edge is done, its exchanges may be opened elsewhere. */
export const CLOSE_GOING_AWAY = 1001;
/** How long a peer may take to send its upgrade request, in ms. */
export const PEER_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface PeerEndpointInit {
  /** The shared secret of the cluster (`peer-secret`). */
  secret: string;
  directory: TunnelDirectory;
  /** Where this edge's own sessions are found (lookup; waitFor within reconnect grace). */
  registry: Registry;
  reconnectGraceMs: number;
  /** Credit window per forwarded exchange on the peer connection, bytes (the edge's `ws-window`). */
  windowBytes: number;
  /** The peer listener serves TLS with this identity (the edge's certificate). */
  tls?: TlsIdentity;
  metrics: EdgeMetrics;
  logger: Logger;
}

/** Why the owner refuses a forwarded exchange, as the RESET code the forwarder acts on. */
function refusalCode(err: Error): ResetCode {
  if (err instanceof MisdirectedError) return ResetCode.MISDIRECTED;
  if (err instanceof AgentBusyError || err instanceof EdgeUnavailableError) return ResetCode.UNAVAILABLE;
  return err instanceof ExchangeResetError ? err.resetCode : ResetCode.INTERNAL;
}

/**
 * How a failure after the agent's exchange opened goes back to the forwarder. MISDIRECTED and
 * UNAVAILABLE are edge-to-edge codes an agent has no business sending: passed on, they would make the
 * forwarder send the request again (to another edge of the pool), so from the agent they are its
 * protocol error.
 */
export function agentFailureCode(err: Error): ResetCode {
  const code = refusalCode(err);
  return code === ResetCode.MISDIRECTED || code === ResetCode.UNAVAILABLE ? ResetCode.PROTOCOL_ERROR : code;
}

/** `first`, then every chunk of `rest`. */
async function* prepend(first: HTTPChunk, rest: AsyncIterable<HTTPChunk>): AsyncGenerator<HTTPChunk> {
  yield first;
  yield* rest;
}

/**
 * The owner's end of edge-to-edge forwarding: a listener of its own (`peer-listen`, TLS when the edge
 * has a certificate) where peer edges open one WebSocket each, authenticated by an HMAC of the shared
 * secret (peer-auth.ts; a wrong one is 401 before the upgrade, logged and counted). On it a WsMux in
 * role `agent`: the peer opens exchanges whose request HEADERS name the tunnel key and the lease
 * epoch it saw. An exchange is taken only when this edge still holds the key under that epoch and a
 * local agent session serves it (never a session on another edge: one hop); it is then piped into
 * that session both ways, the peer's credit window and the agent transport's window as backpressure.
 * A peer that breaks the protocol loses its connection only.
 *
 * Teardown order (close): listener closed → peer sockets closed (their exchanges fail, the local
 * exchanges they fed are aborted) → server closed.
 */
export class PeerEndpoint extends EventEmitter<{ idle: [] }> {
  /** Set on drain: new forwarded exchanges are refused with MISDIRECTED (the forwarder relocates); open ones go on. */
  draining = false;
  /** Forwarded exchanges in flight; `idle` is emitted each time it falls to 0. */
  openExchanges = 0;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  /** The exchange layer on each peer socket (closed with "going away" when this edge is done). */
  private readonly muxes = new Map<WebSocket, WsMux>();
  private readonly init: PeerEndpointInit;
  private readonly log: Logger;
  private readonly handshakes: PeerHandshakes;

  constructor(init: PeerEndpointInit) {
    super();
    this.init = init;
    this.handshakes = new PeerHandshakes(init.secret);
    this.log = init.logger;
    const options = { headersTimeout: PEER_HANDSHAKE_TIMEOUT_MS, requestTimeout: PEER_HANDSHAKE_TIMEOUT_MS, noDelay: true };
    this.server = init.tls ? createHttpsServer({ ...options, cert: init.tls.cert, key: init.tls.key }) : createHttpServer(options);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_WS_FRAME_BYTES,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has(WS_PROTOCOL_PROTO) ? WS_PROTOCOL_PROTO : false),
    });
    // The 101 proves this edge holds the secret too (the handshake's nonce was checked before the upgrade).
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const answer = peerAnswerHeaders(init.secret, init.directory.edgeId, String(req.headers[PEER_NONCE_HEADER]));
      for (const [name, value] of Object.entries(answer)) headers.push(`${name}: ${value}`);
    });
    const perAddress = new PerAddressLimit(MAX_PEER_CONNECTIONS_PER_ADDRESS);
    this.server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? '';
      if (!perAddress.take(address)) {
        init.metrics.limitRejections.inc({ limit: 'peer_connections' });
        socket.destroy();
        return;
      }
      socket.once('close', () => perAddress.release(address));
    });
    this.server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('peer edges connect with a WebSocket upgrade\n');
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** Binds `host:port`; resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const path = (req.url ?? '').split('?')[0];
    const peer = this.handshakes.verify(req.headers);
    if (path !== PEER_PATH || peer === undefined) {
      const status = path !== PEER_PATH ? '404 Not Found' : '401 Unauthorized';
      if (peer === undefined && path === PEER_PATH) {
        this.init.metrics.peerAuthFailures.inc();
        this.log.warn({ peer: req.socket.remoteAddress }, 'peer edge refused: wrong or missing peer secret, a clock off by more than the window, or a replayed handshake');
      }
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, peer, req.socket.remoteAddress));
  }

  private onConnection(ws: WebSocket, peer: string, address: string | undefined): void {
    this.sockets.add(ws);
    keepAlive(ws, PEER_PING_INTERVAL_MS);
    this.init.metrics.peerConnections.inc({ direction: 'in' });
    this.log.info({ peer, address }, 'peer edge connected');
    let open = 0;
    const mux: WsMux = new WsMux({
      socket: ws,
      codec: WS_CODECS[WS_PROTOCOL_PROTO],
      role: 'agent',
      localWindow: this.init.windowBytes,
      onControl: () => mux.protocolError('control frames are not used between edges'),
      onExchange: (head, exchange) => {
        if (open >= MAX_PEER_EXCHANGES_PER_CONNECTION) {
          exchange.abort(new EdgeUnavailableError(`peer connection has ${open} exchanges in flight`, 'peer_exchanges'), ResetCode.UNAVAILABLE);
          return;
        }
        open++;
        void this.serve(head, exchange, peer).finally(() => open--);
      },
      onFault: (err) => this.log.error({ peer, err }, 'closing peer connection: handler fault'),
      onClose: (err) => {
        this.sockets.delete(ws);
        this.muxes.delete(ws);
        this.init.metrics.peerConnections.dec({ direction: 'in' });
        if (err instanceof ProtocolError) this.log.warn({ peer, reason: err.message }, 'closing peer connection: protocol error');
        else this.log.info({ peer }, 'peer edge disconnected');
      },
    });
    this.muxes.set(ws, mux);
    // The forwarder's window is ours too: both ends run the same build with the same ws-window.
    mux.remoteWindow = this.init.windowBytes;
  }

  /**
   * One forwarded exchange, from its check to its log line; never rejects. Refused (RESET
   * MISDIRECTED) unless this edge holds the key under the forwarded epoch and a local session serves it.
   */
  private async serve(raw: HTTPChunk, peerExchange: ExchangeDuplex, peer: string): Promise<void> {
    const fields = { tunnel: '', peer, kind: EXCHANGE_KIND_NAMES[exchangeKindOf(raw)], transport: 'none', forwarded: true };
    const pipeline = new ExchangePipeline({ id: raw.exchangeId, method: raw.method, path: raw.target, logger: this.log, fields });
    pipeline.attach(peerExchange);
    this.openExchanges++;
    let failure: Error | undefined;
    let local: ExchangeDuplex | undefined;
    try {
      const forwarded = takeForwardFields(raw);
      if (!forwarded) throw new MisdirectedError('forwarded exchange without a valid tunnel key and epoch');
      fields.tunnel = forwarded.key;
      // Its agents are moving to other edges: the forwarder looks for the tunnel again and waits for it there.
      if (this.draining) throw new MisdirectedError('edge is draining: its agents move to other edges');
      const session = await this.localSession(forwarded.key, forwarded.epoch);
      fields.transport = session.transport;
      // The peer may reset (its client left) while the agent's slot is awaited.
      const gone = new AbortController();
      pipeline.onFailed((err) => gone.abort(err));
      local = await session.openExchange(forwarded.head, { signal: gone.signal });
      await this.relay(forwarded.head, peerExchange, local, pipeline);
    } catch (err) {
      failure = toError(err);
      peerExchange.abort(failure, local ? agentFailureCode(failure) : refusalCode(failure));
      local?.abort(failure, ResetCode.CANCEL);
    } finally {
      this.openExchanges--;
      if (this.openExchanges === 0) this.emit('idle');
    }
    if (failure instanceof MisdirectedError) this.init.metrics.peerMisdirected.inc();
    pipeline.finish(failure);
  }

  /** The local session serving `key` under `epoch`, or MisdirectedError: a peer's exchange never goes to another peer. */
  private async localSession(key: string, epoch: number): Promise<TunnelSession> {
    const held = this.init.directory.heldEpoch(key);
    if (held !== epoch) throw new MisdirectedError(`tunnel not held here under epoch ${epoch}`);
    const { registry, reconnectGraceMs } = this.init;
    const session = registry.lookup(key) ?? (await registry.waitFor(key, reconnectGraceMs));
    if (!session || isPeerSession(session)) throw new MisdirectedError('no local agent serves this tunnel');
    return session;
  }

  /** Peer → agent and agent → peer at once; a failure on either side aborts the other with the code it had. */
  private async relay(head: HTTPChunk, peerExchange: ExchangeDuplex, local: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    pipeline.attach(local);
    void peerExchange.closed.then(() => {
      if (peerExchange.error) local.abort(peerExchange.error, ResetCode.CANCEL);
    });
    void local.closed.then(() => {
      if (local.error) peerExchange.abort(local.error, agentFailureCode(local.error));
    });
    const statusOf = async function* (source: AsyncIterable<HTTPChunk>): AsyncGenerator<HTTPChunk> {
      for await (const chunk of source) {
        // The final status (a 101 is final for an upgrade); 1xx informational answers are not.
        if (chunk.kind === ChunkKind.HEADERS && chunk.status && (chunk.status >= 200 || chunk.status === 101)) pipeline.status = chunk.status;
        yield chunk;
      }
    };
    const up = local.sink(countData(pipeline.bytesIn)(prepend(head, peerExchange.source)));
    const down = peerExchange.sink(countData(pipeline.bytesOut)(statusOf(local.source)));
    const [u, d] = await Promise.allSettled([up, down]);
    if (u.status === 'rejected') throw u.reason;
    if (d.status === 'rejected') throw d.reason;
  }

  /** Open peer sockets and the bytes waiting in their send buffers. */
  stats(): { connections: number; bufferedBytes: number } {
    let bufferedBytes = 0;
    for (const ws of this.sockets) bufferedBytes += ws.bufferedAmount;
    return { connections: this.sockets.size, bufferedBytes };
  }

  /**
   * Closes every peer socket and the listener. With no forwarded exchange left in flight (a finished
   * drain) each socket is closed with 1001 "going away" first: every exchange this edge took was
   * answered or reset before it, and it takes none after it (the mux reads nothing more), so the
   * forwarder may open one that found no answer again elsewhere. Otherwise (or when a peer does not
   * finish the close handshake within PEER_CLOSE_TIMEOUT_MS) the sockets are cut: their exchanges fail.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const sockets = [...this.sockets];
    if (this.openExchanges === 0) {
      const gone = sockets.map((ws) => (ws.readyState === ws.CLOSED ? undefined : waitForEvent(ws, 'close', { timeoutMs: PEER_CLOSE_TIMEOUT_MS }).catch(() => undefined)));
      const err = new EdgeUnavailableError('edge closing', 'draining');
      for (const mux of [...this.muxes.values()]) mux.close(err, CLOSE_GOING_AWAY);
      await Promise.all(gone);
    }
    for (const ws of sockets) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await closed;
  }
}
