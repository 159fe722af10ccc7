import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from './address.js';
import { waitForEvent, type AbortOptions } from './wait.js';

/** What /readyz answers: 200 when `ready`, else 503, with `body` as JSON either way. */
export interface Readiness {
  ready: boolean;
  body: Record<string, unknown>;
}

/** A Prometheus exposition, for /metrics. */
export interface MetricsText {
  contentType: string;
  text: string;
}

export interface AdminServerInit {
  /** `host:port` or a bare port (on 127.0.0.1). */
  listen: string;
  readiness: () => Readiness;
  /** /metrics; 404 when the process has none (the agent). */
  metrics?: () => Promise<MetricsText>;
}

/** The admin requests of edge and agent alike: /livez, /readyz and, when there are metrics, /metrics. */
export function adminHandler(init: Omit<AdminServerInit, 'listen'>): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const { ready, body } = init.readiness();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else if (path === '/metrics' && init.metrics) {
      const { contentType, text } = await init.metrics();
      res.writeHead(200, { 'content-type': contentType }).end(text);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}

/** Listens on `host:port`; on a failure (or the signal) closes the server and rejects. */
export async function listening(server: Server, port: number, host: string, options: AbortOptions = {}): Promise<void> {
  const started = waitForEvent(server, 'listening', options);
  server.listen(port, host);
  try {
    await started;
  } catch (err) {
    server.close();
    throw err;
  }
}

/**
 * The health listener shared by `jetty edge` and `jetty http`. Lives at the root (shared vocabulary,
 * no internal imports beyond the root's) so that edge and agent can both use it without importing
 * each other.
 */
export class AdminServer {
  readonly port: number;
  private readonly server: Server;
  private closing: Promise<void> | undefined;

  private constructor(server: Server) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Listens on `init.listen`; rejects if it cannot, or with the signal's reason (nothing left open). */
  static async start(init: AdminServerInit, options: AbortOptions = {}): Promise<AdminServer> {
    const { host, port } = parseHostPort(init.listen, '127.0.0.1');
    const serve = adminHandler(init);
    const server = createServer((req, res) => void serve(req, res).catch(() => res.destroy()));
    await listening(server, port, host, options);
    return new AdminServer(server);
  }

  /** Lets the process exit while only this listener is open (the agent's). */
  unref(): this {
    this.server.unref();
    return this;
  }

  /** Stops listening and ends its connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = waitForEvent(this.server, 'close');
      this.server.close();
      this.server.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }
}
