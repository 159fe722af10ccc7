import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_PING_INTERVAL_MS } from '../actors/heartbeat.js';
import { MemoryRegistry, type Registry } from '../actors/registry.js';
import { formatHostPort, parseHostPort } from '../address.js';
import { AgentUnavailableError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { AgentAdmission } from './agent-admission.js';
import { capConnections, PerAddressLimit } from './client-limits.js';
import { GrpcEndpoint } from './grpc-endpoint.js';
import { checkOpenExposure, defaultListenHost } from './exposure.js';
import { checkLimits, DEFAULT_LIMITS, type EdgeLimits } from './limits.js';
import { adminHandler } from './admin-handler.js';
import { ownHostHandler } from './own-host.js';
import { checkTlsIdentity, createPublicServer, type PublicServer, type TlsIdentity } from './public-listener.js';
import { EdgeMetrics } from './metrics.js';
import { tunnelName } from './request-head.js';
import { Router } from './router.js';
import { TokenAuthority, type TokenEntry } from './tokens.js';
import { WsEndpoint } from './ws-endpoint.js';
import { WS_PATH } from '../well-known.js';
import { waitForEvent } from '../wait.js';

/** Agent transports an edge can offer (the seed's TransportMode, per edge instance). */
export const EDGE_TRANSPORTS = ['grpc', 'websocket'] as const;
export type EdgeTransport = (typeof EDGE_TRANSPORTS)[number];

/** How often Node checks header timeouts (its default, 30 s, would let slow-header clients linger). */
const CONNECTION_CHECK_INTERVAL_MS = 1_000;

export interface EdgeInit {
  /** Public HTTP listener, `host:port` or a port; default port 8080 on defaultListenHost (loopback without tokens). */
  listen?: string;
  /** gRPC listener for agents, `host:port` or a port; default port 8091 on defaultListenHost. */
  grpcListen?: string;
  /** Without tokens, accept agents on non-loopback listeners too (`--open`); else Edge.start refuses. */
  allowOpen?: boolean;
  /** Tunnel names refused unless a token names them exactly; default DEFAULT_RESERVED_NAMES. */
  reservedNames?: readonly string[];
  /** gRPC port agents are told to dial, when it differs from the bound one (NAT, load balancer). */
  grpcPublicPort?: number;
  /** Health and metrics listener; off when undefined. */
  adminListen?: string;
  /** Tunnels are `NAME.DOMAIN`; default `localhost`. */
  domain?: string;
  logger: Logger;
  registry?: Registry;
  /** Per-agent cap on exchanges in flight. */
  maxExchangesPerAgent?: number;
  /** How long to wait for an agent to take an exchange, in ms. */
  openTimeoutMs?: number;
  /** Transports offered to agents; default both. */
  transports?: readonly EdgeTransport[];
  /** Liveness ping interval, in ms; default DEFAULT_PING_INTERVAL_MS. */
  pingIntervalMs?: number;
  /** WebSocket: DATA bytes accepted per exchange before credit returns; default DEFAULT_WS_WINDOW_BYTES. */
  wsWindowBytes?: number;
  /** Drain: how long in-flight exchanges may run after SIGTERM, in ms; default 30 s. */
  gracePeriodMs?: number;
  /** How long requests for a tunnel whose agent dropped are held for its return, in ms; default 5 s. */
  reconnectGraceMs?: number;
  /**
   * After start-up, how long requests for a tunnel no agent holds yet wait for one, in ms (after a
   * restart the edge's agents are still reconnecting); default 0 (the CLI's `startup-grace`: 5 s).
   */
  startupGraceMs?: number;
  /** Peers whose X-Forwarded-* and X-Request-Id are kept. */
  trustedProxies?: readonly string[];
  /** Agent tokens; none = the edge runs open. */
  tokens?: readonly TokenEntry[];
  /** Certificate and key: the public listener serves HTTPS (and WebSocket agents wss) and gRPC uses TLS. */
  tls?: TlsIdentity;
  limits?: Partial<EdgeLimits>;
}

export interface EdgeStats {
  sessions: number;
  openExchanges: number;
  idleStreams: number;
  draining: boolean;
  /** Agent WebSocket connections, registered or not. */
  wsConnections: number;
  /** Bytes waiting in those connections' send buffers. */
  wsBufferedBytes: number;
}

/**
 * The edge: public HTTP listener → router → registry → agent sessions, the gRPC and WebSocket
 * endpoints agents use, and the admin listener (health, metrics).
 * Teardown order (close): listeners stop accepting → sessions aborted → endpoints closed → public
 * and admin connections closed.
 */
export class Edge {
  readonly domain: string;
  /** `https` when the edge has a certificate (public listener and gRPC), else `http`. */
  readonly scheme: 'http' | 'https';
  /** No agent tokens: any agent that reaches the edge may register a free name. */
  readonly open: boolean;
  readonly publicPort: number;
  readonly grpcPort: number;
  /** 0 when the admin listener is off. */
  readonly adminPort: number;
  readonly metrics: EdgeMetrics;
  private readonly parts: {
    http: PublicServer;
    admin: Server | undefined;
    grpc: GrpcEndpoint | undefined;
    ws: WsEndpoint | undefined;
    router: Router;
    admission: AgentAdmission;
    gracePeriodMs: number;
  };
  private readonly log: Logger;
  private closing: Promise<void> | undefined;
  private draining: Promise<void> | undefined;

  private constructor(init: {
    domain: string;
    scheme: Edge['scheme'];
    open: boolean;
    publicPort: number;
    grpcPort: number;
    adminPort: number;
    metrics: EdgeMetrics;
    log: Logger;
    parts: Edge['parts'];
  }) {
    this.domain = init.domain;
    this.scheme = init.scheme;
    this.open = init.open;
    this.publicPort = init.publicPort;
    this.grpcPort = init.grpcPort;
    this.adminPort = init.adminPort;
    this.metrics = init.metrics;
    this.log = init.log;
    this.parts = init.parts;
  }

  static async start(init: EdgeInit): Promise<Edge> {
    const domain = (init.domain ?? 'localhost').toLowerCase();
    const tokens = new TokenAuthority(init.tokens ?? []);
    const listen = parseHostPort(init.listen ?? '8080', defaultListenHost(tokens.open));
    const grpcListen = parseHostPort(init.grpcListen ?? '8091', defaultListenHost(tokens.open));
    const transports = init.transports ?? EDGE_TRANSPORTS;
    const agentListeners = [{ setting: 'listen', ...listen }, ...(transports.includes('grpc') ? [{ setting: 'grpc-listen', ...grpcListen }] : [])];
    checkOpenExposure(agentListeners, tokens.open, init.allowOpen === true);
    const limits: EdgeLimits = { ...DEFAULT_LIMITS, ...init.limits };
    checkLimits(limits);
    if (init.tls) checkTlsIdentity(init.tls);
    const scheme = init.tls ? 'https' : 'http';
    const gracePeriodMs = init.gracePeriodMs ?? 30_000;
    const registry = init.registry ?? new MemoryRegistry(init.reconnectGraceMs ?? 5_000, init.startupGraceMs ?? 0);
    const log = init.logger;
    let admission: AgentAdmission | undefined;
    let router: Router | undefined;
    const metrics = new EdgeMetrics(() => ({ openExchanges: router?.openExchanges ?? 0, sessionsByTransport: admission?.byTransport() ?? {} }));
    admission = new AgentAdmission({ registry, tokens, metrics, logger: log, limits, reservedNames: init.reservedNames });
    let publicPort = listen.port;
    const publicUrl = (name: string): string => `${scheme}://${name}.${domain}${publicPort === (init.tls ? 443 : 80) ? '' : `:${publicPort}`}`;
    if (transports.length === 0) throw new UsageError('an edge must offer at least one transport');
    const pingIntervalMs = init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const common = {
      admission,
      metrics,
      logger: log,
      publicUrl,
      maxExchanges: init.maxExchangesPerAgent,
      openTimeoutMs: init.openTimeoutMs,
      pingIntervalMs,
      gracePeriodMs,
    };
    const grpc = transports.includes('grpc') ? new GrpcEndpoint({ ...common, maxConcurrentStreams: limits.h2MaxStreams }) : undefined;
    const ws = transports.includes('websocket') ? new WsEndpoint({ ...common, windowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES }) : undefined;
    let grpcPort = 0;
    const ownHost = ownHostHandler({
      domain,
      scheme,
      ports: () => ({ public: publicPort, grpc: grpc ? (init.grpcPublicPort ?? grpcPort) : undefined }),
      websocketPath: ws ? WS_PATH : undefined,
    });
    router = new Router({ domain, registry, logger: log, ownHost, metrics, limits, reconnectGraceMs: init.reconnectGraceMs ?? 5_000, trustedProxies: init.trustedProxies ?? [] });
    const http = createPublicServer(init.tls, {
      headersTimeout: limits.headerTimeoutMs,
      connectionsCheckingInterval: CONNECTION_CHECK_INTERVAL_MS,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // Streaming bodies have no total deadline; the idle timeout (per exchange) bounds silent ones.
      requestTimeout: 0,
      noDelay: true,
    });
    capConnections(http, new PerAddressLimit(limits.maxConnectionsPerIp), {
      exempt: (address) => router.isTrusted(address),
      onRefused: () => metrics.limitRejections.inc({ limit: 'ip_connections' }),
    });
    http.on('request', router.handle);
    // Expect: 100-continue goes to the origin, whose 100 (or final status) comes back through the tunnel.
    http.on('checkContinue', router.handle);
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      let ownHost: boolean;
      try {
        ownHost = tunnelName(req.headers.host ?? '', domain) === undefined;
      } catch {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      if (ws && req.url === WS_PATH && ownHost && !admission.draining) {
        ws.handleUpgrade(req, socket, head);
        return;
      }
      // Upgrades through a tunnel (WebSocket pass-through) are not carried yet.
      socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\nupgrades are not tunnelled yet\n');
    });
    http.on('clientError', (err: Error & { code?: string }, socket) => {
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      if (tooLarge) metrics.limitRejections.inc({ limit: 'header_bytes' });
      const status = tooLarge ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
      log.debug({ err: err.message, code: err.code }, 'public client error');
    });
    let admin: Server | undefined;
    try {
      if (grpc) grpcPort = await grpc.listen(formatHostPort(grpcListen.host, grpcListen.port), init.tls);
      await listenOn(http, listen.host, listen.port);
      publicPort = (http.address() as AddressInfo).port;
      if (init.adminListen) {
        const a = parseHostPort(init.adminListen, '127.0.0.1');
        admin = createServer();
        await listenOn(admin, a.host, a.port);
      }
    } catch (err) {
      await grpc?.close();
      await ws?.close();
      http.close();
      admin?.close();
      throw err;
    }
    const adminPort = admin ? (admin.address() as AddressInfo).port : 0;
    if (tokens.open) log.warn('no agent tokens configured: this edge is OPEN, any agent may register any free name');
    log.info(
      { listen: formatHostPort(listen.host, publicPort), grpc: grpc ? formatHostPort(grpcListen.host, grpcPort) : 'off', websocket: ws ? WS_PATH : 'off', admin: admin ? adminPort : 'off', domain },
      'edge listening',
    );
    const edge = new Edge({ domain, scheme, open: tokens.open, publicPort, grpcPort, adminPort, metrics, log, parts: { http, admin, grpc, ws, router, admission, gracePeriodMs } });
    const serveAdmin = adminHandler(() => edge.stats(), metrics);
    admin?.on('request', (req, res) => void serveAdmin(req, res));
    return edge;
  }

  /** Counts for the gauges, /readyz and tests: all zero once the edge is quiet. */
  stats(): EdgeStats {
    const ws = this.parts.ws?.stats() ?? { connections: 0, bufferedBytes: 0 };
    const out: EdgeStats = { sessions: 0, openExchanges: 0, idleStreams: 0, draining: this.draining !== undefined, wsConnections: ws.connections, wsBufferedBytes: ws.bufferedBytes };
    for (const s of this.parts.admission.sessions) {
      const st = s.stats();
      out.sessions++;
      out.openExchanges += st.openExchanges + st.pendingOpens;
      out.idleStreams += st.idleStreams;
    }
    return out;
  }

  /**
   * Graceful drain (SIGTERM): /readyz turns 503, no new agents or public connections, agents are told
   * to reconnect elsewhere, in-flight exchanges get `gracePeriodMs`; then the edge closes.
   */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      const { http, admission, router, gracePeriodMs } = this.parts;
      this.log.info({ gracePeriodMs }, 'draining');
      admission.draining = true;
      router.draining = true;
      http.close();
      http.closeIdleConnections();
      for (const s of admission.sessions) s.drain();
      // The router's count is the one /readyz shows: the drain ends the moment the last exchange does.
      if (router.openExchanges > 0) await waitForEvent(router, 'idle', { timeoutMs: gracePeriodMs }).catch(() => undefined);
      const left = router.openExchanges;
      if (left > 0) this.log.warn({ exchanges: left }, 'grace period over: aborting exchanges in flight');
      await this.close();
    })();
    return this.draining;
  }

  /** Stops listening, ends agent sessions and connections now. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { http, admin, grpc, ws, admission } = this.parts;
      admission.draining = true;
      const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      const err = new AgentUnavailableError('edge shutting down');
      await Promise.all([...admission.sessions].map((s) => (s.abort(err), s.closed)));
      await Promise.all([grpc?.close(), ws?.close()]);
      http.closeAllConnections();
      await httpClosed;
      if (admin) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
      this.log.info('edge closed');
    })();
    return this.closing;
  }
}

async function listenOn(server: Server | PublicServer, host: string, port: number): Promise<void> {
  const listening = waitForEvent(server, 'listening');
  server.listen(port, host);
  await listening;
}
