import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';
import { WS_PATH } from '../well-known.js';
import type { AgentAdmission } from './agent-admission.js';
import type { EdgeMetrics } from './metrics.js';
import type { PublicServer } from './public-listener.js';
import { tunnelName } from './request-head.js';
import type { Router } from './router.js';
import type { UpgradeRelay } from './upgrade-relay.js';
import type { WsEndpoint } from './ws-endpoint.js';

const NO_UPGRADE_HERE = 'HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nnothing to upgrade here\n';
const DRAINING_UPGRADE = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n';

export interface PublicHandlersInit {
  domain: string;
  router: Router;
  /** Upgrades (WebSocket pass-through) of requests addressed to a tunnel. */
  upgrades: UpgradeRelay;
  /** Agents dialling WebSocket upgrade at WS_PATH on the edge's own host; undefined when not offered. */
  ws: WsEndpoint | undefined;
  admission: AgentAdmission;
  metrics: EdgeMetrics;
  logger: Logger;
}

/**
 * Wires the public listener: requests (and Expect: 100-continue) go to the router, upgrades to the
 * WebSocket endpoint (agents, on the edge's own host) or through a tunnel (UpgradeRelay), and requests
 * Node cannot parse get a bare 4xx and the connection closed.
 */
export function attachPublicHandlers(http: PublicServer, init: PublicHandlersInit): void {
  const { domain, router, upgrades, ws, admission, metrics, logger } = init;
  http.on('request', router.handle);
  // Expect: 100-continue goes to the origin, whose 100 (or final status) comes back through the tunnel.
  http.on('checkContinue', router.handle);
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let ownHost: boolean;
    try {
      ownHost = tunnelName(req.headers.host ?? '', domain) === undefined;
    } catch {
      refuseUpgrade(socket as Socket, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', http.headersTimeout);
      return;
    }
    if (ws && req.url === WS_PATH && ownHost && !admission.draining) {
      ws.handleUpgrade(req, socket, head);
      return;
    }
    if (!ownHost) {
      upgrades.handle(req, socket, head);
      return;
    }
    // The edge's own host upgrades nothing but the agents' endpoint (refused while draining).
    refuseUpgrade(socket as Socket, ws && req.url === WS_PATH ? DRAINING_UPGRADE : NO_UPGRADE_HERE, http.headersTimeout);
  });
  http.on('clientError', (err: Error & { code?: string }, socket) => {
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    if (tooLarge) metrics.limitRejections.inc({ limit: 'header_bytes' });
    const status = tooLarge ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
    logger.debug({ err: err.message, code: err.code }, 'public client error');
  });
}

/**
 * Answers an upgrade the edge does not serve, then closes. Node hands an 'upgrade' socket over without
 * its own error and timeout listeners: a client reset would be an uncaught 'error' that ends the edge
 * process, and a client that never closes its side would hold the socket for ever. What the client still
 * sends is read and discarded (closing with unread bytes would reset the answer away) for at most
 * `lingerMs` in all, however it trickles.
 */
function refuseUpgrade(socket: Socket, answer: string, lingerMs: number): void {
  const drop = (): void => void socket.destroy();
  const timer = setTimeout(drop, lingerMs);
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', drop);
  socket.on('end', drop);
  socket.resume();
  socket.end(answer);
}
