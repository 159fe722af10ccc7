import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentSession } from '../actors/agent-session.js';
import { Heartbeat } from '../actors/heartbeat.js';
import type { Registry } from '../actors/registry.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, WS_PROTOCOL_PROTO, type WsCodecName, type WsFrame } from '../codec/ws-frame.js';
import { AgentUnavailableError, NameTakenError, ProtocolError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { MIN_WS_WINDOW_BYTES, WsMux } from '../streams/ws-mux.js';
import { isValidTunnelName } from '../tunnel-name.js';
import { HELLO_TIMEOUT_MS } from './grpc-endpoint.js';

/** Upgrade path on the edge's own host. */
export const WS_PATH = '/_jetty/ws';
/** WebSocket close codes the agent acts on (4000–4999 are for applications). */
export const WS_CLOSE_NAME_TAKEN = 4409;
export const WS_CLOSE_BAD_HELLO = 4400;

export interface WsEndpointInit {
  registry: Registry;
  logger: Logger;
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
  private readonly sessions = new Set<AgentSession>();
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

  allSessions(): Iterable<AgentSession> {
    return this.sessions;
  }

  /** Takes over an HTTP upgrade request for WS_PATH. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    const peer = req.socket.remoteAddress;
    const codec = WS_CODECS[(ws.protocol || WS_PROTOCOL_PROTO) as WsCodecName];
    let session: AgentSession | undefined;
    let heartbeat: Heartbeat | undefined;
    const helloTimer = setTimeout(() => mux.close(new ProtocolError('no Hello in time'), WS_CLOSE_BAD_HELLO), HELLO_TIMEOUT_MS);
    const mux: WsMux = new WsMux({
      socket: ws,
      codec,
      role: 'edge',
      localWindow: this.init.windowBytes,
      onControl: (frame) => void onControl(frame),
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
        heartbeat?.alive();
        return;
      }
      const hello = frame.agent.hello;
      if (!hello) return;
      if (session) return mux.protocolError('second Hello');
      clearTimeout(helloTimer);
      const name = hello.name;
      if (!isValidTunnelName(name)) {
        mux.close(new ProtocolError(`invalid tunnel name "${name}": use lower-case letters, digits and hyphens`), WS_CLOSE_BAD_HELLO);
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
          close: (err) => mux.close(err, 1001),
        },
      });
      try {
        await this.init.registry.claim(name, s);
      } catch (err) {
        s.abort(toError(err));
        this.log.info({ name, peer, reason: toError(err).message }, 'agent registration refused');
        mux.close(toError(err), err instanceof NameTakenError ? WS_CLOSE_NAME_TAKEN : 1011);
        return;
      }
      session = s;
      this.sessions.add(s);
      void s.closed.then(() => {
        this.sessions.delete(s);
        void this.init.registry.release(name, s);
        mux.close(new AgentUnavailableError('session closed'), 1001);
        this.log.info({ name, session: s.id }, 'agent disconnected');
      });
      heartbeat = new Heartbeat({
        intervalMs: this.init.pingIntervalMs,
        onTick: (nonce) => mux.sendControl({ stream: 0, edge: { ping: { nonce } } }),
        onDead: (silentMs) => {
          this.log.warn({ name, session: s.id, silentMs }, 'agent missed its pings: closing the session');
          mux.close(new AgentUnavailableError(`agent silent for ${silentMs} ms`), 1001);
        },
      });
      mux.sendControl({
        stream: 0,
        edge: { registered: { name, url: this.init.publicUrl(name), sessionId: s.id, window: this.init.windowBytes, pingIntervalMs: this.init.pingIntervalMs } },
      });
      this.log.info({ name, session: s.id, peer, transport: s.transport }, 'agent registered');
    };
  }

  async close(): Promise<void> {
    const err = new AgentUnavailableError('edge shutting down');
    await Promise.all([...this.sessions].map((s) => (s.abort(err), s.closed)));
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
