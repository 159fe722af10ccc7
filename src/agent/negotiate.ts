import type { TunnelKind } from '../codec/tunnel-codec.js';
import { WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO, type WsCodecName } from '../codec/ws-frame.js';
import { AgentUnavailableError, EdgeCertificateError, NameTakenError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { VERSION } from '../version.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import type { AbortOptions } from '../wait.js';
import { discover, type Discovery } from './discovery.js';
import type { EdgeLink } from './edge-link.js';
import { isFinal } from './refusals.js';
import type { ExchangeHandler, SessionClient } from './session-client.js';

/** Transports an agent may ask for; auto prefers gRPC and falls back to WebSocket. */
export const AGENT_TRANSPORTS = ['auto', 'grpc', 'websocket'] as const;
export type AgentTransport = (typeof AGENT_TRANSPORTS)[number];
/** WebSocket codecs: binary protobuf frames (default) or the legacy JSON frames. */
export const WS_CODEC_NAMES = ['proto', 'json'] as const;
export type WsCodecChoice = (typeof WS_CODEC_NAMES)[number];
export const WS_MASK_NAMES = ['zero', 'random'] as const;
export type WsMaskChoice = (typeof WS_MASK_NAMES)[number];

/** In auto mode, how long gRPC may take to register before the agent falls back to WebSocket. */
export const GRPC_FALLBACK_TIMEOUT_MS = 3_000;

export const AGENT_VERSION = VERSION;

/** How the agent reaches its edge and which transport it asks for. */
export interface NegotiateInit extends EdgeLink {
  /** The edge's public URL, e.g. http://127.0.0.1:8080; https:// means TLS on every connection to it. */
  edge: URL;
  /** Tunnel name. */
  name: string;
  /** Default auto. */
  transport?: AgentTransport;
  /** WebSocket codec; default proto. */
  wsCodec?: WsCodecChoice;
  /** WebSocket: DATA bytes accepted per exchange before credit returns; default DEFAULT_WS_WINDOW_BYTES. */
  wsWindowBytes?: number;
  /** WebSocket frame masking: `zero` key (default, see WsConnectionInit.zeroMask) or `random` per RFC 6455. */
  wsMask?: WsMaskChoice;
  /** What the tunnel serves; default HTTP. */
  tunnelKind?: TunnelKind;
  /** TCP/UDP: the public port to ask for (after a reconnect, the one the edge gave); absent = any. */
  remotePort?: number;
  logger: Logger;
}

/** What a reconnecting agent presents to take over its previous session. */
export interface ResumeTicket {
  sessionId: string;
  secret: string;
}

/** Per connect: the session to resume, where exchanges go, who hears the edge's Drain. */
export interface ConnectOptions extends AbortOptions {
  resume?: ResumeTicket;
  onExchange: ExchangeHandler;
  onDrain: () => void;
}

export interface Negotiated {
  session: SessionClient;
  /** `grpc` or `websocket/<subprotocol>`. */
  transport: string;
}

/** Discovers the edge and registers over the transport negotiation picks (auto: gRPC, else WebSocket). */
export async function negotiate(init: NegotiateInit, options: ConnectOptions): Promise<Negotiated> {
  const found = await discover(init.edge, { ca: init.edgeCa, signal: options.signal });
  options.signal?.throwIfAborted();
  const mode = init.transport ?? 'auto';
  const offered = Object.keys(found.transports).join(', ') || 'nothing';
  if (mode !== 'auto' && !found.transports[mode]) {
    throw new AgentUnavailableError(`the edge at ${init.edge.origin} does not offer ${mode} (it offers ${offered})`);
  }
  if (found.transports.grpc && mode !== 'websocket') {
    try {
      return { session: await dialGrpc(init, found, options), transport: 'grpc' };
    } catch (err) {
      // Refusals are final, and so is a certificate that fails (never try elsewhere around it); only an
      // unreachable gRPC port makes auto try WebSocket, which is TLS too for an https:// edge.
      if (mode === 'grpc' || !found.transports.websocket || err instanceof NameTakenError || err instanceof EdgeCertificateError || isFinal(err)) throw err;
      options.signal?.throwIfAborted();
      init.logger.warn({ reason: toError(err).message }, 'gRPC unavailable, falling back to WebSocket');
    }
  }
  if (!found.transports.websocket) throw new AgentUnavailableError(`the edge at ${init.edge.origin} offers no transport this agent speaks (it offers ${offered})`);
  const codec = init.wsCodec === 'json' ? WS_PROTOCOL_JSON : WS_PROTOCOL_PROTO;
  return { session: await dialWs(init, found, codec, options), transport: `websocket/${codec}` };
}

/** What every transport's Hello carries. */
function sessionInit(init: NegotiateInit, found: Discovery, options: ConnectOptions) {
  const { resume, onExchange, onDrain } = options;
  const kind = { tunnelKind: init.tunnelKind, remotePort: init.remotePort };
  return { name: init.name, version: AGENT_VERSION, logger: init.logger, token: init.token, domain: found.domain, resume: resume?.sessionId, resumeSecret: resume?.secret, onExchange, onDrain, ...kind };
}

/**
 * Each transport's connection module is loaded when the agent first dials it, the one place each is
 * imported: an agent on WebSocket never loads grpc-js (≈ 5 MiB of RSS and 50 ms of start-up), one on
 * gRPC never loads ws.
 */
async function dialGrpc(init: NegotiateInit, found: Discovery, options: ConnectOptions): Promise<SessionClient> {
  const { GrpcConnection } = await import('./grpc-connection.js');
  const auto = (init.transport ?? 'auto') === 'auto' && found.transports.websocket;
  return GrpcConnection.connect(
    {
      ...sessionInit(init, found, options),
      address: `${init.edge.hostname}:${found.transports.grpc!.port}`,
      tls: init.edge.protocol === 'https:' ? { ca: init.edgeCa } : undefined,
      timeoutMs: auto ? GRPC_FALLBACK_TIMEOUT_MS : undefined,
    },
    options,
  );
}

async function dialWs(init: NegotiateInit, found: Discovery, codec: WsCodecName, options: ConnectOptions): Promise<SessionClient> {
  const { WsConnection } = await import('./ws-connection.js');
  const url = new URL(found.transports.websocket!.path, init.edge);
  url.protocol = init.edge.protocol === 'https:' ? 'wss:' : 'ws:';
  return WsConnection.connect(
    {
      ...sessionInit(init, found, options),
      url: url.href,
      codec,
      windowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES,
      zeroMask: init.wsMask !== 'random',
      ca: init.edgeCa,
    },
    options,
  );
}
