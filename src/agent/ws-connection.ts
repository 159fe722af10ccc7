import { WebSocket } from 'ws';
import type { AgentMessage } from '../codec/tunnel-codec.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, type WsCodecName } from '../codec/ws-frame.js';
import { ProtocolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { WsMux } from '../streams/ws-mux.js';
import type { AbortOptions } from '../wait.js';
import { refusalError } from './refusals.js';
import { REGISTER_TIMEOUT_MS, SessionClient, type Registered, type SessionClientInit, type SessionTransport } from './session-client.js';

export interface WsConnectionInit extends Omit<SessionClientInit, 'where' | 'window'> {
  /** ws://host:port/_jetty/ws */
  url: string;
  codec: WsCodecName;
  /** DATA bytes the agent accepts per exchange before returning credit. */
  windowBytes: number;
  /**
   * Mask client frames with a zero key. RFC 6455 masking protects intermediaries from
   * browser-script-controlled bytes; an agent is not a browser, and masking costs most of the upload
   * throughput (bench/README.md). Default true.
   */
  zeroMask?: boolean;
  logger: Logger;
  /** Sent in the upgrade's Authorization header, never in the URL. */
  token?: string;
  /** For a wss:// URL: CA certificate(s) to verify the edge with instead of the system roots. */
  ca?: Buffer;
}

/** A zero masking key: frames stay valid (MASK bit set), the XOR pass changes nothing. */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/**
 * The WebSocket adapter of the agent's session: one socket, control messages on stream 0, exchanges
 * multiplexed with per-exchange credit (the mux delivers them). Teardown order (close): mux closed
 * (exchanges fail, socket closed with a code).
 */
export class WsConnection implements SessionTransport {
  private readonly mux: WsMux;
  private readonly socket: WebSocket;
  /** Hello, written before the socket is open. */
  private readonly pending: AgentMessage[] = [];
  private closeCode = 0;
  private closeReason = '';

  private constructor(init: WsConnectionInit, session: SessionClient) {
    const codec = WS_CODECS[init.codec];
    const socket = (this.socket = new WebSocket(init.url, [codec.name], {
      perMessageDeflate: false,
      maxPayload: MAX_WS_FRAME_BYTES,
      handshakeTimeout: init.timeoutMs ?? REGISTER_TIMEOUT_MS,
      generateMask: init.zeroMask === false ? undefined : zeroMask,
      headers: init.token ? { authorization: `Bearer ${init.token}` } : undefined,
      ca: init.ca,
    }));
    // Registered before the mux's own listener, so the code is known when onClose runs.
    socket.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
    this.mux = new WsMux({
      socket,
      codec,
      role: 'agent',
      localWindow: init.windowBytes,
      // With a zero key a masked payload is the payload itself: DATA goes out without a copy.
      directData: init.zeroMask === false ? undefined : 'zero-mask',
      onExchange: (head, exchange) => session.serve(head, exchange),
      onFault: (err) => init.logger.error({ err }, 'closing the edge session: handler fault'),
      onControl: (frame) => ('edge' in frame ? session.receive(frame.edge) : this.mux.protocolError('agent control message from the edge')),
      // The close code arrives with the 'close' event that ended the mux.
      onClose: (err) => setImmediate(() => session.ended(refusalError('wsCloseCode', this.closeCode, this.closeReason || err.message, err) ?? err)),
    });
    socket.on('open', () => {
      for (const msg of this.pending.splice(0)) this.send(msg);
    });
  }

  /**
   * Opens the socket and registers `init.name`: resolves with the registered session, or rejects with
   * the refusal (REFUSALS), ProtocolError or AgentUnavailableError.
   */
  static connect(init: WsConnectionInit, options?: AbortOptions): Promise<SessionClient> {
    const session = new SessionClient({ ...init, where: init.url, window: init.windowBytes });
    const conn = new WsConnection(init, session);
    return session.register(conn, options);
  }

  send(msg: AgentMessage): void {
    if (this.socket.readyState === WebSocket.CONNECTING) this.pending.push(msg);
    else this.mux.sendControl({ stream: 0, agent: msg });
  }

  start(r: Registered): void {
    if ((r.window ?? 0) > 0) this.mux.remoteWindow = r.window!;
    this.mux.peerReadsFolded = r.foldedChunks === true;
  }

  /** The edge starts WebSocket exchanges by opening a stream of the mux; an Open on stream 0 is ignored, as it always was. */
  open(): void {}

  idleStreams(): number {
    return 0;
  }

  close(err: Error): void {
    this.mux.close(err, err instanceof ProtocolError ? 1002 : 1001);
  }
}
