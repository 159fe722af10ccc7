import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { pushable, type Pushable } from 'it-pushable';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AgentSession } from '../actors/agent-session.js';
import type { ControlChannel } from '../actors/control-channel.js';
import type { AgentMessage } from '../codec/tunnel-codec.js';
import { MAX_WS_FRAME_BYTES, WS_CODECS, WS_PROTOCOL_PROTO, type WsCodecName } from '../codec/ws-frame.js';
import { AgentUnavailableError, BadHelloError, ProtocolError, TransportClosedError } from '../errors.js';
import type { Logger } from '../logger.js';
import { wsCloseCodeFor } from '../session-errors.js';
import { MIN_WS_WINDOW_BYTES, WsMux } from '../streams/ws-mux.js';
import type { EdgeSessionProtocol } from './edge-session-protocol.js';
import type { EdgeMetrics } from './metrics.js';
import { bearer } from './tokens.js';

/** Agent control messages read off the socket but not yet taken by the session (a flood beyond is a protocol error). */
export const MAX_WS_CONTROL_BACKLOG = 64;

export interface WsEndpointInit {
  protocol: EdgeSessionProtocol;
  metrics: EdgeMetrics;
  logger: Logger;
  /** DATA bytes the edge accepts per exchange before returning credit. */
  windowBytes: number;
}

/** Stream 0 of `mux` as a session control channel; exchanges open directly on their own stream ids. */
function muxChannel(mux: WsMux, incoming: Pushable<AgentMessage>, transport: string, peer: string | undefined): ControlChannel {
  return {
    transport,
    peer,
    messages: incoming[Symbol.asyncIterator](),
    get isClosed() {
      return mux.isClosed;
    },
    send: (msg) => mux.write({ stream: 0, edge: msg }),
    close: (err) => mux.close(err, wsCloseCodeFor(err)),
    openDirect: (head) => mux.open(head),
  };
}

/**
 * The edge's WebSocket adapter: agents upgrade at WS_PATH on the edge's own host; the subprotocol picks
 * the codec (protobuf by default, the legacy JSON frames on request). One WsMux per agent; its stream 0
 * is the session's control channel, the session protocol (edge-session-protocol.ts) does the rest.
 * Teardown order (close): sessions aborted (by the edge) → sockets closed → server closed.
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
    const codec = WS_CODECS[(ws.protocol || WS_PROTOCOL_PROTO) as WsCodecName];
    const incoming: Pushable<AgentMessage> = pushable({ objectMode: true });
    let session: AgentSession | undefined;
    let handshake: Promise<void> | undefined;
    const mux: WsMux = new WsMux({
      socket: ws,
      codec,
      role: 'edge',
      localWindow: this.init.windowBytes,
      // perMessageDeflate is off (above): DATA goes header and payload side by side, never copied.
      directData: 'unmasked',
      onControl: (frame) => {
        if (!('agent' in frame)) return mux.protocolError('edge control message from the agent');
        if (incoming.readableLength >= MAX_WS_CONTROL_BACKLOG) return mux.protocolError('agent control messages faster than the edge reads them');
        incoming.push(frame.agent);
        // The first control frame's handler lasts as long as the handshake: a throw in it is this
        // session's fault (1011, logged and counted by the mux), never the process's.
        if (handshake === undefined) return (handshake = accepted.then(() => undefined));
      },
      onFault: (err) => {
        this.init.metrics.sessionFaults.inc({ transport: 'websocket' });
        this.log.error({ peer, tunnel: session?.name, err }, 'closing agent session: handler fault');
      },
      onClose: (err) => {
        incoming.end(new TransportClosedError('agent connection closed', { cause: err }));
        if (err instanceof ProtocolError) this.log.warn({ peer, tunnel: session?.name, reason: err.message }, 'closing agent session: protocol error');
        session?.abort(new AgentUnavailableError('agent connection closed', { cause: err }));
      },
    });
    const accepted = this.init.protocol.accept(muxChannel(mux, incoming, `websocket/${codec.name}`, peer), {
      token: bearer(req.headers.authorization),
      window: this.init.windowBytes,
      checkHello: (hello) => {
        if ((hello.window ?? 0) < MIN_WS_WINDOW_BYTES) throw new BadHelloError(`window ${hello.window} is below ${MIN_WS_WINDOW_BYTES} bytes`);
        mux.remoteWindow = hello.window!;
        mux.peerReadsFolded = hello.foldedChunks === true;
      },
      onAdmitted: (s) => {
        session = s;
      },
    });
    // Until the first control frame hands it to the mux's guard, a rejection is not unhandled.
    accepted.catch(() => undefined);
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
