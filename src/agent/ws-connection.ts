import { WebSocket } from 'ws';
import { Heartbeat } from '../actors/heartbeat.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, type WsCodecName } from '../codec/ws-frame.js';
import { AbortError, AgentUnavailableError, NameNotAllowedError, NameTakenError, ProtocolError, UnauthorizedError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { MIN_WS_WINDOW_BYTES, WsMux } from '../streams/ws-mux.js';
import { WS_CLOSE_BAD_HELLO, WS_CLOSE_NAME_NOT_ALLOWED, WS_CLOSE_NAME_TAKEN, WS_CLOSE_UNAUTHORIZED } from '../well-known.js';
import { checkRegistered } from './edge-answers.js';
import { certificateError } from './edge-link.js';
import type { ExchangeHandler } from './grpc-connection.js';
import { REGISTER_TIMEOUT_MS } from './grpc-connection.js';


export interface WsConnectionInit {
  /** ws://host:port/_jetty/ws */
  url: string;
  codec: WsCodecName;
  name: string;
  version: string;
  /** DATA bytes the agent accepts per exchange before returning credit. */
  windowBytes: number;
  /**
   * Mask client frames with a zero key. RFC 6455 masking protects intermediaries from
   * browser-script-controlled bytes; an agent is not a browser, and masking costs most of the upload
   * throughput (bench/README.md). Default true.
   */
  zeroMask?: boolean;
  logger: Logger;
  onExchange: ExchangeHandler;
  /** Sent in the upgrade's Authorization header, never in the URL. */
  token?: string;
  /** The edge's domain (discovery): Registered.url must be NAME.DOMAIN. */
  domain?: string;
  /** For a wss:// URL: CA certificate(s) to verify the edge with instead of the system roots. */
  ca?: Buffer;
  /** The previous session id after a reconnect. */
  resume?: string;
  /** The resume secret the edge issued with that session. */
  resumeSecret?: string;
  /** The edge is draining: it sends no new exchanges on this connection. */
  onDrain?: () => void;
}

/** A zero masking key: frames stay valid (MASK bit set), the XOR pass changes nothing. */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/**
 * The agent's WebSocket session: one socket, exchanges multiplexed with per-exchange credit.
 * Teardown order (close): heartbeat stopped → mux closed (exchanges fail, socket closed) → `closed`.
 */
export class WsConnection {
  readonly closed: Promise<Error>;
  private constructor(
    readonly name: string,
    readonly url: string,
    readonly sessionId: string,
    /** Issued by the edge with this session: presented to resume it after a reconnect. */
    readonly resumeSecret: string,
    private readonly mux: WsMux,
    closed: Promise<Error>,
  ) {
    this.closed = closed;
  }

  static connect(init: WsConnectionInit): Promise<WsConnection> {
    const codec = WS_CODECS[init.codec];
    const socket = new WebSocket(init.url, [codec.name], {
      perMessageDeflate: false,
      maxPayload: MAX_WS_FRAME_BYTES,
      handshakeTimeout: REGISTER_TIMEOUT_MS,
      generateMask: init.zeroMask === false ? undefined : zeroMask,
      headers: init.token ? { authorization: `Bearer ${init.token}` } : undefined,
      ca: init.ca,
    });
    let heartbeat: Heartbeat | undefined;
    let resolveClosed!: (err: Error) => void;
    const closed = new Promise<Error>((resolve) => (resolveClosed = resolve));
    return new Promise<WsConnection>((resolve, reject) => {
      let registered = false;
      const timer = setTimeout(() => mux.close(new AgentUnavailableError(`edge at ${init.url} did not register us within ${REGISTER_TIMEOUT_MS} ms`)), REGISTER_TIMEOUT_MS);
      let closeCode = 0;
      let closeReason = '';
      // Registered before the mux's own listener, so both are known when onClose runs.
      socket.on('close', (code, reason) => {
        closeCode = code;
        closeReason = reason.toString();
      });
      const mux: WsMux = new WsMux({
        socket,
        codec,
        role: 'agent',
        localWindow: init.windowBytes,
        onExchange: (head, exchange) => init.onExchange(head, exchange),
        onFault: (err) => init.logger.error({ err }, 'closing the edge session: handler fault'),
        onControl: (frame) => {
          if (!('edge' in frame)) return mux.protocolError('agent control message from the edge');
          const m = frame.edge;
          if ('ping' in m && m.ping) {
            heartbeat?.alive();
            mux.sendControl({ stream: 0, agent: { pong: { nonce: m.ping.nonce } } });
          } else if (m.drain) {
            init.onDrain?.();
          } else if ('registered' in m && m.registered && !registered) {
            const r = m.registered;
            // 0: an edge that announces no window; below the minimum no full chunk could ever be sent.
            if ((r.window ?? 0) > 0 && r.window! < MIN_WS_WINDOW_BYTES) return mux.protocolError('edge window below the minimum');
            try {
              checkRegistered(r, { name: init.name, domain: init.domain });
            } catch (err) {
              mux.close(err as Error, 1002);
              return;
            }
            registered = true;
            clearTimeout(timer);
            if ((r.window ?? 0) > 0) mux.remoteWindow = r.window!;
            const interval = r.pingIntervalMs ?? 0;
            if (interval > 0) {
              heartbeat = new Heartbeat({
                intervalMs: interval,
                onDead: (silentMs) => mux.close(new AgentUnavailableError(`lost the edge: no ping for ${silentMs} ms`), 1001),
              });
            }
            resolve(new WsConnection(r.name, r.url, r.sessionId, r.resumeSecret ?? '', mux, closed));
          }
        },
        onClose: (err) => {
          clearTimeout(timer);
          heartbeat?.stop();
          if (registered) {
            resolveClosed(err instanceof AgentUnavailableError ? err : new AgentUnavailableError(`lost the edge: ${err.message}`, { cause: err }));
            return;
          }
          // The close code arrives with the 'close' event that ended the mux.
          setImmediate(() => {
            const reason = closeReason || err.message;
            if (closeCode === WS_CLOSE_NAME_TAKEN) reject(new NameTakenError(reason));
            else if (closeCode === WS_CLOSE_UNAUTHORIZED) reject(new UnauthorizedError(`the edge refused the token: ${reason}`));
            else if (closeCode === WS_CLOSE_NAME_NOT_ALLOWED) reject(new NameNotAllowedError(reason));
            else if (closeCode === WS_CLOSE_BAD_HELLO) reject(new UsageError(reason));
            else if (err instanceof ProtocolError) reject(err);
            else reject(certificateError(err, init.url) ?? new AgentUnavailableError(`cannot register with the edge at ${init.url}: ${err.message}`, { cause: err }));
          });
        },
      });
      socket.on('open', () =>
        mux.sendControl({
          stream: 0,
          agent: { hello: { name: init.name, version: init.version, window: init.windowBytes, resume: init.resume ?? '', resumeSecret: init.resumeSecret ?? '' } },
        }),
      );
    });
  }

  stats(): { openExchanges: number } {
    return { openExchanges: this.mux.openStreams };
  }

  /** Tells the edge this agent is leaving: no new exchanges; those in flight go on. */
  leave(): void {
    this.mux.sendControl({ stream: 0, agent: { drain: { gracePeriodMs: 0 } } });
  }

  close(err: Error = new AbortError('agent closing')): void {
    this.mux.close(err, 1001);
  }
}
