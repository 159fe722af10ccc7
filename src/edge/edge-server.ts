import type { Server } from 'node:http';
import { Server as NetServer, type AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { isClusterDirectoryRegistry } from '../actors/cluster.js';
import { MemoryRegistry, type Registry } from '../actors/registry.js';
import { ClusterRegistry } from '../actors/cluster-registry.js';
import { MEMORY_REGISTRY, RedisLeases, redactRegistryUrl } from '../actors/redis-leases.js';
import { AdminServer, type Readiness } from '../admin-server.js';
import { listenFor } from '../listen-failure.js';
import { formatHostPort } from '../address.js';
import { AgentUnavailableError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { deadline, waitForEvent, WaitTimeoutError, type AbortOptions } from '../wait.js';
import { WS_PATH } from '../well-known.js';
import { AgentAdmission } from './agent-admission.js';
import { capConnections, PerAddressLimit } from './client-limits.js';
import { EdgeSessionProtocol } from './edge-session-protocol.js';
import { edgeConfig, type EdgeConfig, type EdgeInit } from './edge-config.js';
import { GrpcEndpoint } from './grpc-endpoint.js';
import { EdgeMetrics } from './metrics.js';
import { ownHostHandler } from './own-host.js';
import { attachPublicHandlers } from './public-handlers.js';
import { PublicH2 } from './public-h2.js';
import { createPublicServer, reloadTlsIdentity, type PublicServer, type TlsIdentity } from './public-listener.js';
import { Router } from './router.js';
import { UpgradeRelay } from './upgrade-relay.js';
import { WsEndpoint } from './ws-endpoint.js';
import { PortTunnels, type PortTunnelsInit } from './port-tunnels.js';
import { formatPortRanges } from './port-ranges.js';
import { TcpListener } from './tcp-listener.js';
import { UdpListener } from './udp-listener.js';
import { EdgePeerForwarder } from './peer-forwarder.js';
import { PeerEndpoint } from './peer-endpoint.js';

export { EDGE_TRANSPORTS, type EdgeInit, type EdgeTransport } from './edge-config.js';

/**
 * In a cluster, how long a draining edge keeps its public listener open while its /readyz says 503, ms:
 * a load balancer checking /readyz (the HAProxy recipe: every 300 ms) stops sending it new connections
 * first. Closing the listener at once would reset the connections the kernel had already queued for it.
 */
export const CLUSTER_DRAIN_LISTEN_MS = 1_000;
/** How often Node checks header timeouts (its default, 30 s, would let slow-header clients linger). */
const CONNECTION_CHECK_INTERVAL_MS = 1_000;

export interface EdgeStats {
  sessions: number;
  openExchanges: number;
  idleStreams: number;
  draining: boolean;
  /** Agent WebSocket connections, registered or not. */
  wsConnections: number;
  /** Bytes waiting in those connections' send buffers. */
  wsBufferedBytes: number;
  /** Public connections open through TCP tunnels. */
  tcpConnections: number;
  /** Bytes held in those connections' socket buffers (both directions). */
  tcpBufferedBytes: number;
  /** Edge-to-edge connections: peers forwarding to this edge, and this edge's to its peers. */
  peerConnectionsIn: number;
  peerConnectionsOut: number;
  /** Bytes waiting in the send buffers of the connections peers opened to this edge. */
  peerBufferedBytes: number;
  /** UDP flows open through UDP tunnels. */
  udpFlows: number;
  /** Datagram bytes queued for those flows (counted at MAX_DATAGRAM_BYTES each) and in the ports' send queues. */
  udpBufferedBytes: number;
}

/** The pieces of one edge, wired together but not yet listening. */
interface EdgeParts {
  config: EdgeConfig;
  http: PublicServer;
  /** The public port's HTTP/2 connections (h2c prior knowledge, TLS with ALPN h2). */
  h2: PublicH2;
  grpc: GrpcEndpoint | undefined;
  ws: WsEndpoint | undefined;
  router: Router;
  admission: AgentAdmission;
  metrics: EdgeMetrics;
  /** The public ports of TCP tunnels. */
  tcp: PortTunnels;
  /** The public ports of UDP tunnels. */
  udp: PortTunnels;
  /** The owner's end of edge-to-edge forwarding (`peer-listen`); undefined when off. */
  peers: PeerEndpoint | undefined;
  /** The forwarding end (with a shared directory); undefined on a lone edge. */
  forwarder: EdgePeerForwarder | undefined;
  /** The bound ports, filled in by listen() (the own-host page and tunnel URLs read them). */
  ports: { public: number; grpc: number; peer: number };
  /** The shared registry, when there is one (`--registry redis://…`, or one a test passed in). */
  cluster: ClusterRegistry | undefined;
  /** The edge built the cluster registry from its URL, so it closes it. */
  ownsCluster: boolean;
}

/** The registry `--registry` names: a ClusterRegistry on Redis, its calls and leases counted in `metrics`. */
function clusterRegistry(config: EdgeConfig, init: EdgeInit, metrics: EdgeMetrics): ClusterRegistry {
  const leases = new RedisLeases({
    url: config.registryUrl,
    edgeId: config.edgeId,
    logger: init.logger,
    onCommand: (command, seconds, ok) => {
      metrics.redisSeconds.observe({ command }, seconds);
      if (!ok) metrics.redisErrors.inc({ command });
    },
  });
  return new ClusterRegistry({
    leases,
    logger: init.logger,
    reconnectGraceMs: config.reconnectGraceMs,
    startupGraceMs: config.startupGraceMs,
    observer: {
      claim: (result) => metrics.leaseClaims.inc({ result }),
      renewal: (result) => metrics.leaseRenewals.inc({ result }),
      loss: (result) => metrics.leaseLosses.inc({ result }),
    },
  });
}

/**
 * Edge-to-edge forwarding, when the registry is a cluster's (ClusterDirectoryRegistry): a forwarder
 * handed to it (remote sessions), with a peer secret; the peer listener, with `peer-listen`.
 */
function peering(config: EdgeConfig, init: EdgeInit, registry: Registry, metrics: EdgeMetrics): Pick<EdgeParts, 'forwarder' | 'peers'> {
  const directory = isClusterDirectoryRegistry(registry) ? registry : undefined;
  if (config.peer && !directory) throw new UsageError('--peer-listen needs a shared registry (--registry redis://…): no other edge would find this one');
  if (!directory) return { forwarder: undefined, peers: undefined };
  const logger = init.logger;
  const { wsWindowBytes: windowBytes, reconnectGraceMs } = config;
  if (!init.peerSecret) {
    logger.warn('no --peer-secret: requests for tunnels held by other edges are not forwarded from this one');
    return { forwarder: undefined, peers: undefined };
  }
  const forwarder = new EdgePeerForwarder({ directory, secret: init.peerSecret, windowBytes, reconnectGraceMs, ca: init.peerCa, metrics, logger });
  directory.useForwarder(forwarder);
  const peers = config.peer
    ? new PeerEndpoint({ secret: config.peer.secret, directory, registry, reconnectGraceMs, windowBytes, tls: init.tls, metrics, logger })
    : undefined;
  return { forwarder, peers };
}

/** Builds the edge's pieces from its config: registry → admission → endpoints; router → public server. */
function assemble(config: EdgeConfig, init: EdgeInit): EdgeParts {
  const { domain, scheme, tokens, limits } = config;
  const log = init.logger;
  const ports = { public: config.listen.port, grpc: 0, peer: 0 };
  let admission: AgentAdmission | undefined;
  let router: Router | undefined;
  const stats = () => ({ openExchanges: router?.openExchanges ?? 0, sessionsByTransport: admission?.byTransport() ?? {} });
  const metrics = new EdgeMetrics(stats, { enabled: init.metrics !== false || init.adminListen !== undefined });
  const ownsCluster = !init.registry && config.registryUrl !== MEMORY_REGISTRY;
  const registry: Registry = init.registry ?? (ownsCluster ? clusterRegistry(config, init, metrics) : new MemoryRegistry(config.reconnectGraceMs, config.startupGraceMs));
  const cluster = registry instanceof ClusterRegistry ? registry : undefined;
  const { forwarder, peers } = peering(config, init, registry, metrics);
  const heldElsewhere = cluster && ((key: string) => cluster.heldElsewhere(key));
  // With forwarding, a drained edge's agents move to the others and its requests follow them there.
  const handsOver = forwarder !== undefined;
  admission = new AgentAdmission({ registry, tokens, metrics, logger: log, limits, reservedNames: init.reservedNames, heldElsewhere, handsOver });
  const publicUrl = (name: string): string => `${scheme}://${name}.${domain}${ports.public === (init.tls ? 443 : 80) ? '' : `:${ports.public}`}`;
  // One pool of public ports per kind; each port's listener finds its tunnel in the registry as `KIND:PORT`.
  const where = { host: config.listen.host, registry, logger: log, metrics, reconnectGraceMs: config.reconnectGraceMs };
  const pool = (kind: 'tcp' | 'udp', ranges: EdgeConfig['tcpPorts'], open: PortTunnelsInit['open']): PortTunnels =>
    new PortTunnels({ kind, ranges, registry, reconnectGraceMs: config.reconnectGraceMs, open, heldElsewhere });
  const tcp = pool('tcp', config.tcpPorts, (port, key) => TcpListener.listen({ ...where, port, key, idleTimeoutMs: config.tcpIdleTimeoutMs, maxConnections: config.tcpMaxConnections }));
  const udp = pool('udp', config.udpPorts, (port, key) => UdpListener.listen({ ...where, port, key, idleTimeoutMs: config.udpIdleTimeoutMs, maxFlows: config.udpMaxFlows }));
  const protocol = new EdgeSessionProtocol({
    admission,
    logger: log,
    publicUrl,
    reservePort: (kind, requested) => (kind === 'tcp' ? tcp : udp).reserve(requested),
    portUrl: (kind, port) => `${kind}://${domain}:${port}`,
    maxExchanges: init.maxExchangesPerAgent,
    openTimeoutMs: init.openTimeoutMs,
    pingIntervalMs: config.pingIntervalMs,
    gracePeriodMs: config.gracePeriodMs,
    onPingRtt: (ms) => metrics.pingRtt.observe(ms / 1000),
  });
  const common = { protocol, admission, metrics, logger: log };
  const grpc = config.transports.includes('grpc') ? new GrpcEndpoint({ ...common, maxConcurrentStreams: limits.h2MaxStreams }) : undefined;
  const ws = config.transports.includes('websocket') ? new WsEndpoint({ ...common, windowBytes: config.wsWindowBytes }) : undefined;
  const ownHost = ownHostHandler({
    domain,
    scheme,
    ports: () => ({ public: ports.public, grpc: grpc ? (init.grpcPublicPort ?? ports.grpc) : undefined }),
    websocketPath: ws ? WS_PATH : undefined,
  });
  const trustedProxies = init.trustedProxies ?? [];
  router = new Router({ domain, registry, logger: log, ownHost, metrics, limits, reconnectGraceMs: config.reconnectGraceMs, trustedProxies, handsOver });
  const h2 = new PublicH2({
    maxHeaderBytes: limits.maxHeaderBytes,
    maxHeaderCount: limits.maxHeaderCount,
    idleTimeoutMs: limits.keepAliveTimeoutMs,
    onRequest: router.handle,
    logger: log,
  });
  const http = createPublicServer(init.tls, {
    headersTimeout: limits.headerTimeoutMs,
    connectionsCheckingInterval: CONNECTION_CHECK_INTERVAL_MS,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    // Streaming bodies have no total deadline; the idle timeout (per exchange) bounds silent ones.
    requestTimeout: 0,
    noDelay: true,
  }, h2);
  const trusting = router;
  capConnections(http, new PerAddressLimit(limits.maxConnectionsPerIp), {
    exempt: (address) => trusting.isTrusted(address),
    onRefused: () => metrics.limitRejections.inc({ limit: 'ip_connections' }),
  });
  const upgrades = new UpgradeRelay({ domain, router, metrics, limits, logger: log });
  attachPublicHandlers(http, { domain, router, upgrades, ws, admission, metrics, logger: log });
  return { config, http, h2, grpc, ws, router, admission, metrics, tcp, udp, peers, forwarder, ports, cluster, ownsCluster };
}

/** Opens the gRPC, public and admin listeners; on a failure closes what was opened and rethrows. */
async function listen(parts: EdgeParts, init: EdgeInit, stats: () => EdgeStats, options: AbortOptions): Promise<AdminServer | undefined> {
  const { http, grpc, ws, config, metrics, ports, peers, cluster } = parts;
  let admin: AdminServer | undefined;
  try {
    if (peers && config.peer) {
      const { host, port } = config.peer.listen;
      ports.peer = await listenFor('peer-listen', formatHostPort(host, port), peers.listen(host, port));
    }
    const grpcAddress = formatHostPort(config.grpcListen.host, config.grpcListen.port);
    if (grpc) ports.grpc = await listenFor('grpc-listen', grpcAddress, grpc.listen(grpcAddress, init.tls));
    options.signal?.throwIfAborted();
    await listenFor('listen', formatHostPort(config.listen.host, config.listen.port), listenOn(http, config.listen.host, config.listen.port, options));
    ports.public = (http.address() as AddressInfo).port;
    // In a cluster every edge listens on every TCP/UDP tunnel port: a client reaching it on a port
    // another edge holds is forwarded there, as a request for a name is.
    if (parts.forwarder) {
      for (const pool of [parts.tcp, parts.udp]) {
        const skipped = await pool.listenAll();
        if (skipped.length) init.logger.warn({ kind: pool.kind, ports: skipped.join(',') }, 'ports in use by another program: this edge does not serve them');
      }
    }
    if (init.adminListen) {
      const readiness = (): Readiness => {
        const s = stats();
        // Not ready until the shared registry answered once: an edge that cannot claim names takes no agents.
        const joining = cluster !== undefined && !cluster.joined;
        const status = s.draining ? 'draining' : joining ? 'joining' : 'ready';
        const view = cluster ? { cluster: cluster.view(), registry: cluster.view().registry } : {};
        return { ready: !s.draining && !joining, body: { status, agents: s.sessions, exchanges: s.openExchanges, ...view } };
      };
      const text = async (): Promise<{ contentType: string; text: string }> => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() });
      admin = await listenFor('admin-listen', init.adminListen, AdminServer.start({ listen: init.adminListen, readiness, metrics: text }, options));
    }
    return admin;
  } catch (err) {
    parts.tcp.abort();
    parts.udp.abort();
    await peers?.close();
    await grpc?.close();
    await ws?.close();
    http.close();
    await admin?.close();
    throw err;
  }
}

/**
 * The edge: public HTTP listener → router → registry → agent sessions, the gRPC and WebSocket
 * endpoints agents use, and the admin listener (health, metrics). Edge.start is the composition
 * root: edgeConfig (defaults, checks) → assemble (wiring) → listen.
 * Teardown order (close): listeners stop accepting → sessions aborted → endpoints closed (agents'
 * and peers', and this edge's connections to its peers) → public connections closed → shared
 * registry closed (leases released) → admin closed.
 */
export class Edge {
  readonly domain: string;
  /** `https` when the edge has a certificate (public listener and gRPC), else `http`. */
  readonly scheme: 'http' | 'https';
  /** No agent tokens: any agent that reaches the edge may register a free name. */
  readonly open: boolean;
  /** `tcp-ports` as configured (`20000-20099`), '' when TCP tunnels are off. */
  readonly tcpPorts: string;
  /** `udp-ports` likewise. */
  readonly udpPorts: string;
  readonly publicPort: number;
  readonly grpcPort: number;
  /** 0 when the admin listener is off. */
  readonly adminPort: number;
  /** 0 when the peer listener is off. */
  readonly peerPort: number;
  /**
   * The URL other edges reach this one's peer listener at (`peer-url`, else `http(s)://<peer-listen>`
   * with the bound port): what the shared registry stores beside this edge's leases. Undefined when off.
   */
  readonly peerUrl: string | undefined;
  readonly metrics: EdgeMetrics;
  /** This edge's id in the shared registry (`--edge-id`). */
  readonly edgeId: string;
  /** `memory` or the Redis URL, its password hidden. */
  readonly registry: string;
  /**
   * The shared registry (`--registry redis://…`), undefined with the in-memory one: the directory of
   * the cluster, where edge-to-edge forwarding plugs in (ClusterRegistry.useForwarder).
   */
  readonly cluster: ClusterRegistry | undefined;
  private readonly parts: EdgeParts;
  private readonly admin: AdminServer | undefined;
  private readonly log: Logger;
  private closing: Promise<void> | undefined;
  private draining: Promise<void> | undefined;

  private constructor(parts: EdgeParts, admin: AdminServer | undefined, log: Logger) {
    this.parts = parts;
    this.admin = admin;
    this.log = log;
    this.domain = parts.config.domain;
    this.scheme = parts.config.scheme;
    this.open = parts.config.tokens.open;
    this.tcpPorts = formatPortRanges(parts.config.tcpPorts);
    this.udpPorts = formatPortRanges(parts.config.udpPorts);
    this.publicPort = parts.ports.public;
    this.grpcPort = parts.ports.grpc;
    this.adminPort = admin?.port ?? 0;
    this.peerPort = parts.ports.peer;
    const peer = parts.config.peer;
    this.peerUrl = peer ? (peer.url ?? `${parts.config.scheme}://${formatHostPort(peer.listen.host, parts.ports.peer)}`) : undefined;
    this.metrics = parts.metrics;
    this.edgeId = parts.config.edgeId;
    this.registry = String(redactRegistryUrl(parts.config.registryUrl));
    this.cluster = parts.cluster;
    // Known only now (a peer listener on port 0 learns its port by listening): the edge record carries it.
    if (this.peerUrl) this.cluster?.advertise(this.peerUrl);
  }

  /** Builds and starts an edge; rejects with a UsageError for a config that cannot run, or with the signal's reason. */
  static async start(init: EdgeInit, options: AbortOptions = {}): Promise<Edge> {
    options.signal?.throwIfAborted();
    const config = edgeConfig(init);
    const parts = assemble(config, init);
    let edge: Edge | undefined;
    let admin: AdminServer | undefined;
    try {
      admin = await listen(parts, init, () => edge!.stats(), options);
    } catch (err) {
      if (parts.ownsCluster) await parts.cluster?.close();
      throw err;
    }
    edge = new Edge(parts, admin, init.logger);
    const { listen: l, grpcListen, domain, tokens } = config;
    if (tokens.open) init.logger.warn('no agent tokens configured: this edge is OPEN, any agent may register any free name');
    if (tokens.open && config.tcpPorts.length + config.udpPorts.length > 0) {
      init.logger.warn({ tcpPorts: formatPortRanges(config.tcpPorts), udpPorts: formatPortRanges(config.udpPorts) }, 'TCP/UDP tunnels are OPEN to anyone: any agent may take a port');
    }
    init.logger.info(
      {
        listen: formatHostPort(l.host, edge.publicPort),
        grpc: parts.grpc ? formatHostPort(grpcListen.host, edge.grpcPort) : 'off',
        websocket: parts.ws ? WS_PATH : 'off',
        tcpPorts: formatPortRanges(config.tcpPorts) || 'off',
        udpPorts: formatPortRanges(config.udpPorts) || 'off',
        admin: admin ? edge.adminPort : 'off',
        peer: edge.peerUrl ?? 'off',
        domain,
        registry: edge.registry,
        edgeId: config.edgeId,
      },
      'edge listening',
    );
    return edge;
  }

  /** Counts for the gauges, /readyz and tests: all zero once the edge is quiet. */
  stats(): EdgeStats {
    const ws = this.parts.ws?.stats() ?? { connections: 0, bufferedBytes: 0 };
    const { tcp } = this.parts;
    const out: EdgeStats = {
      sessions: 0,
      openExchanges: 0,
      idleStreams: 0,
      draining: this.draining !== undefined,
      wsConnections: ws.connections,
      wsBufferedBytes: ws.bufferedBytes,
      tcpConnections: tcp.connections,
      tcpBufferedBytes: tcp.bufferedBytes(),
      peerConnectionsIn: this.parts.peers?.connections ?? 0,
      peerConnectionsOut: this.parts.forwarder?.connections ?? 0,
      peerBufferedBytes: this.parts.peers?.stats().bufferedBytes ?? 0,
      udpFlows: this.parts.udp.connections,
      udpBufferedBytes: this.parts.udp.bufferedBytes(),
    };
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
   * to reconnect elsewhere, in-flight exchanges get `gracePeriodMs`; then the edge closes. Aborting
   * `options.signal` (a second signal) cuts the wait short: the edge closes at once.
   */
  drain(options: AbortOptions = {}): Promise<void> {
    this.draining ??= (async () => {
      const { http, h2, admission, router, config, tcp, udp, peers } = this.parts;
      const { gracePeriodMs } = config;
      this.log.info({ gracePeriodMs }, 'draining');
      admission.draining = true;
      router.draining = true;
      // Peers get MISDIRECTED for new exchanges (they wait for the agent on another edge); those in flight get the grace period.
      if (peers) peers.draining = true;
      const handsOver = this.parts.forwarder !== undefined;
      let listenerGone: Promise<void> = Promise.resolve();
      if (handsOver) {
        // The listener stays while the balancer's check sees /readyz 503 (CLUSTER_DRAIN_LISTEN_MS), then
        // goes alone: a connection accepted before is still answered (forwarded to wherever its tunnel's
        // agent went); http.close() would also close those whose request has not arrived yet.
        listenerGone = delay(CLUSTER_DRAIN_LISTEN_MS, undefined, { signal: options.signal })
          .catch(() => undefined)
          .then(() => {
            NetServer.prototype.close.call(http);
          });
      } else {
        http.close();
        http.closeIdleConnections();
      }
      h2.drain();
      // TCP tunnels stop accepting first; their open connections get the grace period, then are reset.
      tcp.stopAccepting();
      udp.stopAccepting();
      const sessions = [...admission.sessions];
      for (const s of sessions) s.drain();
      const until = Date.now() + gracePeriodMs;
      // In a cluster the edge stays until its agents have moved (each leaves once its exchanges are
      // done): requests held here for them meanwhile are forwarded to their new edge, not cut.
      if (handsOver) await settledWithin(sessions.map((s) => s.closed), gracePeriodMs, options);
      // Requests on connections accepted until the listener went are counted by the wait below.
      await listenerGone;
      // The router's count is the one /readyz shows: the drain ends the moment the last exchange does.
      if (router.openExchanges > 0) await waitForEvent(router, 'idle', { timeoutMs: Math.max(1, until - Date.now()), signal: options.signal }).catch(() => undefined);
      await tcp.idle({ timeoutMs: Math.max(0, until - Date.now()), signal: options.signal }).catch(() => undefined);
      if (peers && peers.openExchanges > 0) {
        await waitForEvent(peers, 'idle', { timeoutMs: Math.max(1, until - Date.now()), signal: options.signal }).catch(() => undefined);
      }
      const left = router.openExchanges + tcp.connections + (peers?.openExchanges ?? 0);
      if (left > 0) this.log.warn({ exchanges: left }, 'grace period over: aborting exchanges in flight');
      await this.close();
    })();
    return this.draining;
  }

  /**
   * Puts a new certificate and key on the public listener (SIGHUP): new connections get them, open ones
   * keep theirs. Throws UsageError, keeping the old ones, when they cannot be used or the edge has no TLS.
   * The gRPC listener keeps the certificate it started with.
   */
  reloadTls(tls: TlsIdentity): void {
    reloadTlsIdentity(this.parts.http, tls);
  }

  /** Stops listening, ends agent sessions and connections now. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { http, h2, grpc, ws, admission, tcp, udp, peers, forwarder } = this.parts;
      admission.draining = true;
      if (peers) peers.draining = true;
      const httpClosed = waitForEvent(http, 'close');
      http.close();
      tcp.abort();
      udp.abort();
      const err = new AgentUnavailableError('edge shutting down');
      await Promise.all([...admission.sessions].map((s) => (s.abort(err), s.closed)));
      await Promise.all([grpc?.close(), ws?.close(), peers?.close(), forwarder?.close()]);
      http.closeAllConnections();
      h2.close();
      await httpClosed;
      // Every lease released (its sessions are gone), the edge record deleted, Redis quit.
      if (this.parts.ownsCluster) await this.parts.cluster?.close();
      await this.admin?.close();
      this.log.info('edge closed');
    })();
    return this.closing;
  }
}

/** Resolves once every promise has settled, `ms` has passed, or `options.signal` aborted, whichever is first. */
async function settledWithin(promises: Promise<unknown>[], ms: number, options: AbortOptions): Promise<void> {
  const over = new AbortController();
  const onAbort = (): void => over.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([Promise.allSettled(promises), deadline(ms, new WaitTimeoutError('drain'), { signal: over.signal })]).catch(() => undefined);
  } finally {
    over.abort();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

async function listenOn(server: Server | PublicServer, host: string, port: number, options: AbortOptions = {}): Promise<void> {
  const listening = waitForEvent(server, 'listening', options);
  server.listen(port, host);
  await listening;
}
