import { WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO } from '../codec/ws-frame.js';
import { AgentUnavailableError, NameTakenError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { GrpcConnection } from './grpc-connection.js';
import { randomName } from './names.js';
import { OriginProxy } from './origin-proxy.js';
import { WsConnection } from './ws-connection.js';

/** Transports an agent may ask for; auto prefers gRPC and falls back to WebSocket. */
export const AGENT_TRANSPORTS = ['auto', 'grpc', 'websocket'] as const;
export type AgentTransport = (typeof AGENT_TRANSPORTS)[number];
/** WebSocket codecs: binary protobuf frames (default) or the legacy JSON frames. */
export const WS_CODEC_NAMES = ['proto', 'json'] as const;
export type WsCodecChoice = (typeof WS_CODEC_NAMES)[number];
export const WS_MASK_NAMES = ['zero', 'random'] as const;
export type WsMaskChoice = (typeof WS_MASK_NAMES)[number];

/** Where agents ask the edge what it offers (edge's own host). */
export const DISCOVERY_PATH = '/_jetty/discovery';
/** How long discovery may take. */
export const DISCOVERY_TIMEOUT_MS = 5_000;
/** In auto mode, how long gRPC may take to register before the agent falls back to WebSocket. */
export const GRPC_FALLBACK_TIMEOUT_MS = 3_000;

export const AGENT_VERSION = '0.2.0';

export interface AgentInit {
  /** The edge's public URL, e.g. http://127.0.0.1:8080. */
  edge: URL;
  /** The local service. */
  origin: URL;
  /** Tunnel name; a random readable one when absent. */
  name?: string;
  /** Default auto. */
  transport?: AgentTransport;
  /** WebSocket codec; default proto. */
  wsCodec?: WsCodecChoice;
  /** WebSocket: DATA bytes accepted per exchange before credit returns. */
  wsWindowBytes?: number;
  /** WebSocket frame masking: `zero` key (default, see WsConnectionInit.zeroMask) or `random` per RFC 6455. */
  wsMask?: WsMaskChoice;
  logger: Logger;
}

/** What the edge says it offers at DISCOVERY_PATH. */
export interface Discovery {
  version: number;
  domain: string;
  publicPort: number;
  transports: { grpc?: { port: number }; websocket?: { path: string } };
}

/** Asks the edge what it offers. */
export async function discover(edge: URL): Promise<Discovery> {
  const url = new URL(DISCOVERY_PATH, edge);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS) });
  } catch (err) {
    throw new AgentUnavailableError(`cannot reach the edge at ${edge.origin}: ${toError((err as { cause?: unknown }).cause ?? err).message}`, { cause: err });
  }
  if (!res.ok) throw new AgentUnavailableError(`${url.href} answered ${res.status}: is this a Jetty edge?`);
  return (await res.json()) as Discovery;
}

type Connection = GrpcConnection | WsConnection;

/**
 * The agent: discovers the edge, picks a transport, registers its tunnel and serves exchanges
 * against the origin. Teardown order (close): connection closed (exchanges aborted) → origin
 * connections closed.
 */
export class Agent {
  readonly url: string;
  readonly name: string;
  /** `grpc` or `websocket/<subprotocol>`. */
  readonly transport: string;
  /** Resolves with the reason once the agent stops serving (edge lost, or close()). */
  readonly closed: Promise<Error>;
  private readonly connection: Connection;

  private constructor(connection: Connection, transport: string, proxy: OriginProxy) {
    this.connection = connection;
    this.url = connection.url;
    this.name = connection.name;
    this.transport = transport;
    this.closed = connection.closed.then((err) => {
      proxy.close();
      return err;
    });
  }

  static async start(init: AgentInit): Promise<Agent> {
    const found = await discover(init.edge);
    const mode = init.transport ?? 'auto';
    const offered = Object.keys(found.transports).join(', ') || 'nothing';
    if (mode !== 'auto' && !found.transports[mode]) {
      throw new AgentUnavailableError(`the edge at ${init.edge.origin} does not offer ${mode} (it offers ${offered})`);
    }
    const proxy = new OriginProxy({ origin: init.origin, logger: init.logger });
    const name = init.name ?? randomName();
    const onExchange = proxy.serve.bind(proxy);
    const log = init.logger;
    try {
      if (found.transports.grpc && mode !== 'websocket') {
        try {
          const conn = await GrpcConnection.connect({
            address: `${init.edge.hostname}:${found.transports.grpc.port}`,
            name,
            version: AGENT_VERSION,
            logger: log,
            onExchange,
            timeoutMs: mode === 'auto' && found.transports.websocket ? GRPC_FALLBACK_TIMEOUT_MS : undefined,
          });
          return new Agent(conn, 'grpc', proxy);
        } catch (err) {
          // Refusals are final; only an unreachable gRPC port makes auto try WebSocket.
          if (mode === 'grpc' || !found.transports.websocket || err instanceof NameTakenError || err instanceof UsageError) throw err;
          log.warn({ reason: toError(err).message }, 'gRPC unavailable, falling back to WebSocket');
        }
      }
      const path = found.transports.websocket?.path;
      if (!path) throw new AgentUnavailableError(`the edge at ${init.edge.origin} offers no transport this agent speaks (it offers ${offered})`);
      const wsUrl = new URL(path, init.edge);
      wsUrl.protocol = init.edge.protocol === 'https:' ? 'wss:' : 'ws:';
      const codec = init.wsCodec === 'json' ? WS_PROTOCOL_JSON : WS_PROTOCOL_PROTO;
      const conn = await WsConnection.connect({
        url: wsUrl.href,
        codec,
        name,
        version: AGENT_VERSION,
        windowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES,
        zeroMask: init.wsMask !== 'random',
        logger: log,
        onExchange,
      });
      return new Agent(conn, `websocket/${codec}`, proxy);
    } catch (err) {
      proxy.close();
      throw err;
    }
  }

  stats(): { openExchanges: number } {
    return { openExchanges: this.connection.stats().openExchanges };
  }

  /** Stops serving; in-flight exchanges are aborted. */
  async close(): Promise<void> {
    this.connection.close();
    await this.closed;
  }
}
