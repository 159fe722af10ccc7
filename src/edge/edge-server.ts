import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { MemoryRegistry, type Registry } from '../actors/registry.js';
import { formatHostPort, parseHostPort } from '../address.js';
import type { Logger } from '../logger.js';
import { DEFAULT_PING_INTERVAL_MS } from '../actors/heartbeat.js';
import { UsageError } from '../errors.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { GrpcEndpoint } from './grpc-endpoint.js';
import { tunnelName } from './request-head.js';
import { Router } from './router.js';
import { WS_PATH, WsEndpoint } from './ws-endpoint.js';

/** Agent transports an edge can offer (the seed's TransportMode, per edge instance). */
export const EDGE_TRANSPORTS = ['grpc', 'websocket'] as const;
export type EdgeTransport = (typeof EDGE_TRANSPORTS)[number];

/** Path on the edge's own host where agents learn what the edge offers. */
export const DISCOVERY_PATH = '/_jetty/discovery';
/** Public listener: how long a client may take to send its request head, in ms. */
export const HEADERS_TIMEOUT_MS = 30_000;
/** Public listener: idle keep-alive connections are closed after this many ms. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface EdgeInit {
  /** Public HTTP listener, `host:port`; default 0.0.0.0:8080. */
  listen?: string;
  /** gRPC listener for agents, `host:port`; default 0.0.0.0:8091. */
  grpcListen?: string;
  /** Tunnels are `NAME.DOMAIN`; default `localhost`. */
  domain?: string;
  logger: Logger;
  registry?: Registry;
  /** Per-agent cap on exchanges in flight. */
  maxExchangesPerAgent?: number;
  /** How long to wait for an agent to take an exchange, in ms. */
  openTimeoutMs?: number;
  /**
   * gRPC port agents are told to dial, when it differs from the bound one (NAT, load balancer);
   * default the bound port.
   */
  grpcPublicPort?: number;
  /** Transports offered to agents; default both. */
  transports?: readonly EdgeTransport[];
  /** Liveness ping interval, in ms; default DEFAULT_PING_INTERVAL_MS. */
  pingIntervalMs?: number;
  /** WebSocket: DATA bytes accepted per exchange before credit returns; default DEFAULT_WS_WINDOW_BYTES. */
  wsWindowBytes?: number;
}

export interface EdgeStats {
  sessions: number;
  openExchanges: number;
  idleStreams: number;
}

/**
 * The edge: public HTTP listener → router → registry → agent sessions, and the gRPC endpoint the
 * agents dial. Teardown order (close): public listener stops accepting → agent sessions and gRPC
 * server end → public connections closed.
 */
export class Edge {
  readonly domain: string;
  readonly publicPort: number;
  readonly grpcPort: number;
  private readonly http: Server;
  private readonly grpc: GrpcEndpoint | undefined;
  private readonly ws: WsEndpoint | undefined;
  private readonly log: Logger;
  private closing: Promise<void> | undefined;

  private constructor(domain: string, http: Server, grpc: GrpcEndpoint | undefined, ws: WsEndpoint | undefined, publicPort: number, grpcPort: number, log: Logger) {
    this.domain = domain;
    this.http = http;
    this.grpc = grpc;
    this.ws = ws;
    this.publicPort = publicPort;
    this.grpcPort = grpcPort;
    this.log = log;
  }

  static async start(init: EdgeInit): Promise<Edge> {
    const domain = (init.domain ?? 'localhost').toLowerCase();
    const listen = parseHostPort(init.listen ?? '0.0.0.0:8080');
    const grpcListen = parseHostPort(init.grpcListen ?? '0.0.0.0:8091');
    const registry = init.registry ?? new MemoryRegistry();
    const log = init.logger;
    let publicPort = listen.port;
    const publicUrl = (name: string): string =>
      `http://${name}.${domain}${publicPort === 80 ? '' : `:${publicPort}`}`;
    const transports = init.transports ?? EDGE_TRANSPORTS;
    if (transports.length === 0) throw new UsageError('an edge must offer at least one transport');
    const pingIntervalMs = init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const common = { registry, logger: log, publicUrl, maxExchanges: init.maxExchangesPerAgent, openTimeoutMs: init.openTimeoutMs, pingIntervalMs };
    const grpc = transports.includes('grpc') ? new GrpcEndpoint(common) : undefined;
    const ws = transports.includes('websocket')
      ? new WsEndpoint({ ...common, windowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES })
      : undefined;
    let grpcPort = 0;
    const ownHost = (req: IncomingMessage, res: ServerResponse): void => {
      if (req.url === DISCOVERY_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
        const offered: Record<string, unknown> = {};
        if (grpc) offered.grpc = { port: init.grpcPublicPort ?? grpcPort };
        if (ws) offered.websocket = { path: WS_PATH };
        const body = JSON.stringify({ version: 1, domain, publicPort, transports: offered });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      const body = `404 Not Found\nThis is a Jetty edge. Tunnels live at http://NAME.${domain}:${publicPort}/\n`;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const router = new Router({ domain, registry, logger: log, ownHost });
    const http = createServer({
      headersTimeout: HEADERS_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Streaming bodies have no total deadline; idle and header timeouts bound slow clients.
      requestTimeout: 0,
      noDelay: true,
    });
    http.on('request', router.handle);
    // Expect: 100-continue goes to the origin, whose 100 (or final status) comes back through the tunnel.
    http.on('checkContinue', router.handle);
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const host = req.headers.host ?? '';
      if (ws && req.url === WS_PATH && tunnelName(host, domain) === undefined) {
        ws.handleUpgrade(req, socket, head);
        return;
      }
      // Upgrades through a tunnel (WebSocket pass-through) are not carried yet.
      socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\nupgrades are not tunnelled yet\n');
    });
    http.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
      log.debug({ err: err.message }, 'public client error');
    });
    try {
      if (grpc) grpcPort = await grpc.listen(formatHostPort(grpcListen.host, grpcListen.port));
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(listen.port, listen.host, () => {
          http.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await grpc?.close();
      await ws?.close();
      http.close();
      throw err;
    }
    publicPort = (http.address() as AddressInfo).port;
    log.info({ listen: formatHostPort(listen.host, publicPort), grpc: grpc ? formatHostPort(grpcListen.host, grpcPort) : 'off', websocket: ws ? WS_PATH : 'off', domain }, 'edge listening');
    return new Edge(domain, http, grpc, ws, publicPort, grpcPort, log);
  }

  /** Counts for the gauge and for tests: all must be zero once the edge is quiet. */
  stats(): EdgeStats {
    const out: EdgeStats = { sessions: 0, openExchanges: 0, idleStreams: 0 };
    const sessions = [...(this.grpc?.allSessions() ?? []), ...(this.ws?.allSessions() ?? [])];
    for (const s of sessions) {
      const st = s.stats();
      out.sessions++;
      out.openExchanges += st.openExchanges + st.pendingOpens;
      out.idleStreams += st.idleStreams;
    }
    return out;
  }

  /** Stops listening, ends agent sessions and public connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const httpClosed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      await Promise.all([this.grpc?.close(), this.ws?.close()]);
      this.http.closeAllConnections();
      await httpClosed;
      this.log.info('edge closed');
    })();
    return this.closing;
  }
}
