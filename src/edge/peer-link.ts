import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { HTTPChunk } from '../codec/http-chunk.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, WS_PROTOCOL_PROTO } from '../codec/ws-frame.js';
import { PeerUnavailableError, ProtocolError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { WsMux } from '../streams/ws-mux.js';
import type { AbortOptions } from '../wait.js';
import type { EdgeMetrics } from './metrics.js';
import { PEER_NONCE_HEADER, PEER_PATH, peerAuthHeaders, verifyPeerAnswer } from './peer-auth.js';

/** A peer connection with no exchange for this long is closed (opened again on the next use), ms. */
export const PEER_IDLE_CLOSE_MS = 60_000;
/** How long opening a peer connection may take (TCP, TLS, upgrade), ms. */
export const PEER_CONNECT_TIMEOUT_MS = 5_000;
/** WebSocket ping interval on a peer connection; a peer silent for two intervals is dropped, ms. */
export const PEER_PING_INTERVAL_MS = 10_000;

export interface PeerLinkInit {
  /** The peer's listener, `http(s)://host:port` (its `peer-url`). */
  url: string;
  /** The peer's edge id (for logs). */
  peerId: string;
  /** This edge's id, proved with `secret`. */
  edgeId: string;
  secret: string;
  /** Credit window per exchange, bytes (the edge's `ws-window`; both ends use their own). */
  windowBytes: number;
  /** CA to verify an https:// peer with, instead of the system roots. */
  ca?: Buffer;
  metrics: EdgeMetrics;
  logger: Logger;
}

/** A zero masking key: the peer is an edge, not a browser (ws-connection.ts says why). */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/**
 * Drops `ws` when the other end stops answering pings (a peer whose host vanished sends no FIN).
 * Returns the stop.
 */
export function keepAlive(ws: WebSocket, intervalMs: number): () => void {
  let answered = true;
  ws.on('pong', () => (answered = true));
  const timer = setInterval(() => {
    if (!answered) {
      ws.terminate();
      return;
    }
    answered = false;
    ws.ping();
  }, intervalMs);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  ws.once('close', stop);
  return stop;
}

/**
 * One WebSocket from this edge to a peer edge, carrying any number of forwarded exchanges (a WsMux in
 * role `edge`: we open, the owner answers). Closed when idle for PEER_IDLE_CLOSE_MS or by its
 * forwarder; once closed it stays closed (the forwarder opens a new one on demand).
 *
 * Teardown order (close): mux closed (its exchanges fail) → socket closed → `closed` settles.
 */
export class PeerLink {
  readonly closed: Promise<void>;
  private readonly mux: WsMux;
  private readonly init: PeerLinkInit;
  private open = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private isOver = false;
  private resolveClosed!: () => void;

  private constructor(ws: WebSocket, init: PeerLinkInit) {
    this.init = init;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.mux = new WsMux({
      socket: ws,
      codec: WS_CODECS[WS_PROTOCOL_PROTO],
      role: 'edge',
      localWindow: init.windowBytes,
      onControl: () => this.mux.protocolError('control frames are not used between edges'),
      onFault: (err) => init.logger.error({ peer: init.peerId, err }, 'closing peer connection: handler fault'),
      onClose: (err) => this.ended(err),
    });
    this.mux.remoteWindow = init.windowBytes;
    keepAlive(ws, PEER_PING_INTERVAL_MS);
    init.metrics.peerConnections.inc({ direction: 'out' });
    this.armIdle();
  }

  /** Opens a connection to the peer at `init.url`; PeerUnavailableError when it cannot be had. */
  static connect(init: PeerLinkInit, options: AbortOptions = {}): Promise<PeerLink> {
    const url = new URL(PEER_PATH, init.url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const headers = peerAuthHeaders(init.secret, init.edgeId);
    const ws = new WebSocket(url, [WS_PROTOCOL_PROTO], {
      perMessageDeflate: false,
      maxPayload: MAX_WS_FRAME_BYTES,
      handshakeTimeout: PEER_CONNECT_TIMEOUT_MS,
      generateMask: zeroMask,
      headers,
      ca: init.ca,
    });
    return new Promise<PeerLink>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        cleanup();
        // What the socket reports while it is torn down is of no interest now.
        ws.on('error', () => undefined);
        ws.terminate();
        init.logger.warn({ peer: init.peerId, url: init.url, err: err.message }, 'cannot reach peer edge');
        reject(new PeerUnavailableError(`peer edge ${init.peerId} unreachable`, { cause: err }));
      };
      const onError = (err: Error): void => fail(err);
      const onAbort = (): void => fail(toError(options.signal!.reason));
      // Before any request goes: the answer must come from that edge, holding the secret.
      const onUpgrade = (res: IncomingMessage): void => {
        if (!verifyPeerAnswer(init.secret, res.headers, init.peerId, headers[PEER_NONCE_HEADER])) {
          fail(new PeerUnavailableError(`the listener at ${init.url} is not edge ${init.peerId} of this cluster (its answer does not prove the peer secret)`));
        }
      };
      const cleanup = (): void => {
        ws.off('error', onError);
        ws.off('upgrade', onUpgrade);
        options.signal?.removeEventListener('abort', onAbort);
      };
      ws.on('error', onError);
      ws.on('upgrade', onUpgrade);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      ws.once('open', () => {
        if (settled) return;
        if (ws.protocol !== WS_PROTOCOL_PROTO) return fail(new ProtocolError('peer edge chose no known subprotocol'));
        settled = true;
        cleanup();
        resolve(new PeerLink(ws, init));
      });
    });
  }

  get isClosed(): boolean {
    return this.isOver;
  }

  /** Forwarded exchanges in flight on this connection. */
  get load(): number {
    return this.open;
  }

  /** Starts an exchange whose request HEADERS (with the forwarding fields) are `head`. */
  openExchange(head: HTTPChunk): ExchangeDuplex {
    if (this.isOver) throw new PeerUnavailableError(`connection to peer edge ${this.init.peerId} is closed`);
    const exchange = this.mux.open(head);
    this.open++;
    clearTimeout(this.idleTimer);
    void exchange.closed.then(() => {
      this.open--;
      this.armIdle();
    });
    return exchange;
  }

  private armIdle(): void {
    if (this.open > 0 || this.isOver) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.close(new PeerUnavailableError('peer connection idle')), PEER_IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  /** Closes the connection; its exchanges fail with `err`. Idempotent. */
  close(err: Error): void {
    this.mux.close(err, 1001);
  }

  private ended(err: Error): void {
    if (this.isOver) return;
    this.isOver = true;
    clearTimeout(this.idleTimer);
    this.init.metrics.peerConnections.dec({ direction: 'out' });
    if (err instanceof ProtocolError) this.init.logger.warn({ peer: this.init.peerId, reason: err.message }, 'closing peer connection: protocol error');
    else this.init.logger.info({ peer: this.init.peerId, reason: err.message }, 'peer connection closed');
    this.resolveClosed();
  }
}
