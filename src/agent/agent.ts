import { AgentUnavailableError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { GrpcConnection } from './grpc-connection.js';
import { randomName } from './names.js';
import { OriginProxy } from './origin-proxy.js';

/** Transports an agent may ask for. */
export const AGENT_TRANSPORTS = ['auto', 'grpc'] as const;
export type AgentTransport = (typeof AGENT_TRANSPORTS)[number];

/** Where agents ask the edge what it offers (edge's own host). */
export const DISCOVERY_PATH = '/_jetty/discovery';
/** How long discovery may take. */
export const DISCOVERY_TIMEOUT_MS = 5_000;

export const AGENT_VERSION = '0.1.0';

export interface AgentInit {
  /** The edge's public URL, e.g. http://127.0.0.1:8080. */
  edge: URL;
  /** The local service. */
  origin: URL;
  /** Tunnel name; a random readable one when absent. */
  name?: string;
  transport?: AgentTransport;
  logger: Logger;
}

/** What the edge says it offers at DISCOVERY_PATH. */
export interface Discovery {
  version: number;
  domain: string;
  publicPort: number;
  transports: { grpc?: { port: number } };
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

/**
 * The agent: discovers the edge, registers its tunnel and serves exchanges against the origin.
 * Teardown order (close): connection closed (exchanges aborted) → origin connections closed.
 */
export class Agent {
  readonly url: string;
  readonly name: string;
  readonly transport: 'grpc';
  /** Resolves with the reason once the agent stops serving (edge lost, or close()). */
  readonly closed: Promise<Error>;
  private readonly connection: GrpcConnection;

  private constructor(connection: GrpcConnection, proxy: OriginProxy) {
    this.connection = connection;
    this.url = connection.url;
    this.name = connection.name;
    this.transport = 'grpc';
    this.closed = connection.closed.then((err) => {
      proxy.close();
      return err;
    });
  }

  static async start(init: AgentInit): Promise<Agent> {
    const found = await discover(init.edge);
    const grpcPort = found.transports.grpc?.port;
    if (grpcPort === undefined) {
      throw new UsageError(`the edge at ${init.edge.origin} offers no transport this agent speaks (grpc)`);
    }
    const proxy = new OriginProxy({ origin: init.origin, logger: init.logger });
    try {
      const connection = await GrpcConnection.connect({
        address: `${init.edge.hostname}:${grpcPort}`,
        name: init.name ?? randomName(),
        version: AGENT_VERSION,
        logger: init.logger,
        onExchange: (head, exchange) => proxy.serve(head, exchange),
      });
      return new Agent(connection, proxy);
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
