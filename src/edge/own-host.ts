import type { IncomingMessage, ServerResponse } from 'node:http';
import { DISCOVERY_PATH } from '../well-known.js';
import type { OwnHostHandler } from './router.js';

export interface OwnHostInit {
  domain: string;
  scheme: 'http' | 'https';
  /** Read per request: ports are known once the listeners are bound. `grpc` undefined = not offered. */
  ports: () => { public: number; grpc?: number };
  /** The WebSocket upgrade path, when WebSocket is offered. */
  websocketPath?: string;
}

/**
 * Requests for the edge's own host (the domain itself, an IP): discovery at DISCOVERY_PATH (what the
 * edge offers agents), and a short 404 landing page for everything else.
 */
export function ownHostHandler(init: OwnHostInit): OwnHostHandler {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const ports = init.ports();
    if (req.url === DISCOVERY_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      const offered: Record<string, unknown> = {};
      if (ports.grpc !== undefined) offered.grpc = { port: ports.grpc };
      if (init.websocketPath) offered.websocket = { path: init.websocketPath };
      const body = JSON.stringify({ version: 1, domain: init.domain, publicPort: ports.public, transports: offered });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const body = `404 Not Found\nThis is a Jetty edge. Tunnels live at ${init.scheme}://NAME.${init.domain}:${ports.public}/\n`;
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
