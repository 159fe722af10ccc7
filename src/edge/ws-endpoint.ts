import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentSession } from '../actors/agent-session.js';
import { Heartbeat } from '../actors/heartbeat.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, WS_PROTOCOL_PROTO, type WsCodecName, type WsFrame } from '../codec/ws-frame.js';
import { AgentUnavailableError, ProtocolError, toError } from '../errors.js';
import { wsCloseCodeFor } from '../session-errors.js';
import type { Logger } from '../logger.js';
import { MIN_WS_WINDOW_BYTES, WsMux } from '../streams/ws-mux.js';
import { isValidTunnelName } from '../tunnel-name.js';
import type { AgentAdmission, Admitted } from './agent-admission.js';
import { HELLO_TIMEOUT_MS } from './grpc-endpoint.js';
import type { EdgeMetrics } from './metrics.js';
import { bearer } from './tokens.js';
import { WS_CLOSE_BAD_HELLO } from '../well-known.js';



export interface WsEndpointInit {
  admission: AgentAdmission;
  metrics: EdgeMetrics;
  logger: Logger;
  /** Drain: how long in-flight exchanges get (told to agents). */
  gracePeriodMs: number;
  publicUrl: (name: string) => string;
  /** DATA bytes the edge accepts per exchange before returning credit. */
  windowBytes: number;
  pingIntervalMs: number;
  maxExchanges?: number;
  openTimeoutMs?: number;
}

/**
 * The edge's WebSocket side: agents upgrade at WS_PATH on the edge's own host; the subprotocol picks
 * the codec (protobuf by default, the legacy JSON frames on request). One WsMux per agent.
 * Teardown order (close): sessions aborted → sockets closed → server closed.
 */
export class WsEndpoint {
  private readonly wss: WebSocketServer;
  private readonly init: WsEndpointInit;
  private readonly log: Logger;
  private readonly sockets = new Set<WebSocket>();

  constructor(init: WsEndpointInit) {
    this.init = init;
    this.log = init.logger;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_WS_FRAME_BYTES,
      perMessageDeflate: false,
      handleProtocols: (offered) => {
        for (const p of offered) if (p in WS_CODECS) return p;
        return false;
      },
    });
  }

  /** Takes over an HTTP upgrade request for WS_PATH. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    const peer = req.socket.remoteAddress;
    const token = bearer(req.headers.authorization);
    const codec = WS_CODECS[(ws.protocol || WS_PROTOCOL_PROTO) as WsCodecName];
    let session: AgentSession | undefined;
    let heartbeat: Heartbeat | undefined;
    // One handshake per connection, decided on the first Hello before anything is awaited: Hellos
    // that arrive together in one read must not each start an admission.
    let helloSeen = false;
    const helloTimer = setTimeout(() => mux.close(new ProtocolError('no Hello in time'), WS_CLOSE_BAD_HELLO), HELLO_TIMEOUT_MS);
    const mux: WsMux = new WsMux({
      socket: ws,
      codec,
      role: 'edge',
      localWindow: this.init.windowBytes,
      onControl: (frame) => onControl(frame),
      onFault: (err) => {
        this.init.metrics.sessionFaults.inc({ transport: 'websocket' });
        this.log.error({ peer, name: session?.name, err }, 'closing agent session: handler fault');
      },
      onClose: (err) => {
        clearTimeout(helloTimer);
        heartbeat?.stop();
        if (err instanceof ProtocolError) this.log.warn({ peer, name: session?.name, reason: err.message }, 'closing agent session: protocol error');
        session?.abort(new AgentUnavailableError('agent connection closed', { cause: err }));
      },
    });
    const onControl = async (frame: WsFrame): Promise<void> => {
      if (!('agent' in frame)) return mux.protocolError('edge control message from the agent');
      if (frame.agent.pong) {
        heartbeat?.alive(frame.agent.pong.nonce);
        return;
      }
      if (frame.agent.drain) {
        session?.drain();
        return;
      }
      const hello = frame.agent.hello;
      if (!hello) return;
      if (helloSeen) return mux.protocolError('second Hello');
      helloSeen = true;
      clearTimeout(helloTimer);
      const name = hello.name;
      if (!isValidTunnelName(name)) {
        // The name is not quoted back: it is the peer's text (the agent knows what it sent).
        mux.close(new ProtocolError('invalid tunnel name: use 1-63 lower-case letters, digits and inner hyphens'), WS_CLOSE_BAD_HELLO);
        return;
      }
      if ((hello.window ?? 0) < MIN_WS_WINDOW_BYTES) {
        mux.close(new ProtocolError(`window ${hello.window} is below ${MIN_WS_WINDOW_BYTES} bytes`), WS_CLOSE_BAD_HELLO);
        return;
      }
      mux.remoteWindow = hello.window!;
      const s = new AgentSession({
        id: randomUUID(),
        name,
        transport: `websocket/${codec.name}`,
        logger: this.log,
        maxExchanges: this.init.maxExchanges,
        openTimeoutMs: this.init.openTimeoutMs,
        control: {
          openDirect: (head) => mux.open(head),
          // RESET travels on the exchange's own stream id at once: no separate Cancel is needed.
          sendOpen: () => undefined,
          sendCancel: () => undefined,
          sendDrain: () => mux.sendControl({ stream: 0, edge: { drain: { gracePeriodMs: this.init.gracePeriodMs } } }),
          close: (err) => mux.close(err, 1001),
        },
      });
      let admitted: Admitted;
      try {
        admitted = await this.init.admission.admit(s, { token, resume: hello.resume || undefined, resumeSecret: hello.resumeSecret || undefined, peer });
      } catch (err) {
        s.abort(toError(err));
        this.log.info({ name, peer, reason: toError(err).message }, 'agent registration refused');
        mux.close(toError(err), wsCloseCodeFor(err));
        return;
      }
      if (mux.isClosed) {
        // The connection went away while admission ran: nobody will ever close this session.
        s.abort(new AgentUnavailableError('agent connection closed during registration'));
        return;
      }
      session = s;
      void s.closed.then(() => mux.close(new AgentUnavailableError('session closed'), 1001));
      heartbeat = new Heartbeat({
        intervalMs: this.init.pingIntervalMs,
        onTick: (nonce) => mux.sendControl({ stream: 0, edge: { ping: { nonce } } }),
        onRtt: (ms) => this.init.metrics.pingRtt.observe(ms / 1000),
        onDead: (silentMs) => {
          this.log.warn({ name, peer, silentMs }, 'agent missed its pings: closing the session');
          mux.close(new AgentUnavailableError(`agent silent for ${silentMs} ms`), 1001);
        },
      });
      mux.sendControl({
        stream: 0,
        edge: {
          registered: { name, url: this.init.publicUrl(name), sessionId: s.id, window: this.init.windowBytes, pingIntervalMs: this.init.pingIntervalMs, resumeSecret: admitted.resumeSecret },
        },
      });
      this.log.info({ name, peer, transport: s.transport }, 'agent registered');
    };
  }

  /** Open agent sockets (registered or not) and the bytes waiting in their send buffers. */
  stats(): { connections: number; bufferedBytes: number } {
    let bufferedBytes = 0;
    for (const ws of this.sockets) bufferedBytes += ws.bufferedAmount;
    return { connections: this.sockets.size, bufferedBytes };
  }

  /** Closes every socket and the server (sessions are aborted by the edge first). */
  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
