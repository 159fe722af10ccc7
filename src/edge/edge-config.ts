import { hostname } from 'node:os';
import { DEFAULT_PING_INTERVAL_MS } from '../actors/heartbeat.js';
import { MEMORY_REGISTRY, parseRegistryUrl } from '../actors/redis-leases.js';
import type { Registry } from '../actors/registry.js';
import { formatHostPort, parseHostPort, type HostPort } from '../address.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DEFAULT_GRACE_PERIOD_MS, DEFAULT_RECONNECT_GRACE_MS } from '../settings.js';
import { DEFAULT_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { checkOpenExposure, defaultListenHost } from './exposure.js';
import { checkLimits, DEFAULT_LIMITS, type EdgeLimits } from './limits.js';
import { MIN_PEER_SECRET_BYTES } from './peer-auth.js';
import { checkTlsIdentity, type TlsIdentity } from './public-listener.js';
import { parsePortRanges, type PortRange } from './port-ranges.js';
import { DEFAULT_TCP_IDLE_TIMEOUT_MS, DEFAULT_TCP_MAX_CONNECTIONS } from './tcp-listener.js';
import { DEFAULT_UDP_IDLE_TIMEOUT_MS, DEFAULT_UDP_MAX_FLOWS } from './udp-listener.js';
import { TokenAuthority, type TokenEntry } from './tokens.js';

/** Agent transports an edge can offer (the seed's TransportMode, per edge instance). */
export const EDGE_TRANSPORTS = ['grpc', 'websocket'] as const;
export type EdgeTransport = (typeof EDGE_TRANSPORTS)[number];

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
  /**
   * Keep Prometheus metrics (default true; always with an admin listener). The CLI turns them off
   * when it has no admin listener: no one could read them, and prom-client is ≈ 3 MiB of RSS.
   */
  metrics?: boolean;
  /** Tunnels are `NAME.DOMAIN`; default `localhost`. */
  domain?: string;
  logger: Logger;
  /** A registry built by the caller (tests); else the edge builds the one `registryUrl` names. */
  registry?: Registry;
  /**
   * `memory` (default: this edge alone) or `redis://HOST:PORT/DB`: tunnel names and ports are leases in
   * Redis, shared by every edge that names the same one (see actors/cluster-registry.ts).
   */
  registryUrl?: string;
  /** This edge's id in the shared registry; default `HOSTNAME-PID`. */
  edgeId?: string;
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
  /** Drain: how long in-flight exchanges may run after SIGTERM, in ms; default DEFAULT_GRACE_PERIOD_MS. */
  gracePeriodMs?: number;
  /** How long requests for a tunnel whose agent dropped are held for its return, in ms; default DEFAULT_RECONNECT_GRACE_MS. */
  reconnectGraceMs?: number;
  /**
   * After start-up, how long requests for a tunnel no agent holds yet wait for one, in ms (after a
   * restart the edge's agents are still reconnecting); default 0 (the CLI's `startup-grace`: DEFAULT_STARTUP_GRACE_MS).
   */
  startupGraceMs?: number;
  /** Peers whose X-Forwarded-* and X-Request-Id are kept. */
  trustedProxies?: readonly string[];
  /** Agent tokens; none = the edge runs open. */
  tokens?: readonly TokenEntry[];
  /** Certificate and key: the public listener serves HTTPS (and WebSocket agents wss) and gRPC uses TLS. */
  tls?: TlsIdentity;
  limits?: Partial<EdgeLimits>;
  /** Public ports of TCP tunnels (`20000-20099,20200`); empty or absent = no TCP tunnels. */
  tcpPorts?: string | readonly PortRange[];
  /** Public ports of UDP tunnels; empty or absent = no UDP tunnels. */
  udpPorts?: string | readonly PortRange[];
  /** A TCP tunnel connection with no byte either way for this long is reset, ms; default DEFAULT_TCP_IDLE_TIMEOUT_MS. */
  tcpIdleTimeoutMs?: number;
  /** Open public connections per TCP tunnel; default DEFAULT_TCP_MAX_CONNECTIONS. */
  tcpMaxConnections?: number;
  /** A UDP flow with no datagram either way for this long ends, ms; default DEFAULT_UDP_IDLE_TIMEOUT_MS. */
  udpIdleTimeoutMs?: number;
  /** Flows per UDP tunnel; default DEFAULT_UDP_MAX_FLOWS. */
  udpMaxFlows?: number;
  /**
   * Edge-to-edge listener, `host:port` (`peer-listen`): peers of the cluster forward exchanges for the
   * tunnels this edge holds to it. Off when absent; needs `peerSecret` and a cluster registry
   * (`registry` that is a ClusterDirectoryRegistry, actors/cluster.ts).
   */
  peerListen?: string;
  /** Shared secret of the cluster's edges (`peer-secret`), at least MIN_PEER_SECRET_BYTES bytes. */
  peerSecret?: string;
  /**
   * URL the other edges reach this edge's peer listener at (`peer-url`), stored with its leases;
   * default `http(s)://<peer-listen>` with the bound port (https when the edge has a certificate).
   */
  peerUrl?: string;
  /** CA that signs the peers' certificates (`peer-ca`, PEM), instead of the system roots. */
  peerCa?: Buffer;
}

/** The peer settings of an edge, checked. */
export interface PeerConfig {
  listen: HostPort;
  secret: string;
  /** Configured or derived from `listen`; undefined when `listen` has port 0 (derived from the bound port). */
  url: string | undefined;
}

/** An EdgeInit with every default applied and checked: what Edge.start builds from. */
export interface EdgeConfig {
  domain: string;
  /** `memory` or a checked Redis URL. */
  registryUrl: string;
  edgeId: string;
  scheme: 'http' | 'https';
  tokens: TokenAuthority;
  listen: HostPort;
  grpcListen: HostPort;
  transports: readonly EdgeTransport[];
  limits: EdgeLimits;
  pingIntervalMs: number;
  wsWindowBytes: number;
  gracePeriodMs: number;
  reconnectGraceMs: number;
  startupGraceMs: number;
  tcpPorts: readonly PortRange[];
  udpPorts: readonly PortRange[];
  tcpIdleTimeoutMs: number;
  tcpMaxConnections: number;
  udpIdleTimeoutMs: number;
  udpMaxFlows: number;
  /** Undefined when the peer listener is off. */
  peer: PeerConfig | undefined;
}

function portRangesOf(setting: string, value: string | readonly PortRange[] | undefined): readonly PortRange[] {
  if (typeof value !== 'string') return value ?? [];
  try {
    return parsePortRanges(value);
  } catch (err) {
    throw new UsageError(`${setting}: ${(err as Error).message}`);
  }
}

/** What an edge id may be: it is part of Redis keys and of space-separated hint messages. */
export const EDGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `HOSTNAME-PID`, with anything an edge id may not hold replaced by hyphens. */
export function defaultEdgeId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'edge';
  return `${host}-${process.pid}`;
}

function registryUrlOf(value: string | undefined): string {
  try {
    return parseRegistryUrl(value ?? MEMORY_REGISTRY);
  } catch (err) {
    throw new UsageError(`registry: ${(err as Error).message}`);
  }
}

/**
 * Checks the peer settings (UsageError naming the problem): a peer listener needs a secret of at least
 * MIN_PEER_SECRET_BYTES, and a URL to advertise when it listens on a wildcard address. Returns the
 * URL to advertise (`peerUrl`, or derived from `peerListen`; '' when the port is still 0).
 */
export function checkPeerSettings(peerListen: string | undefined, peerSecret: string | undefined, peerUrl: string | undefined, tls: boolean): string {
  if (!peerListen) return '';
  if (!peerSecret) throw new UsageError(`--peer-listen needs --peer-secret (or --peer-secret-file): at least ${MIN_PEER_SECRET_BYTES} bytes shared by every edge of the cluster`);
  if (Buffer.byteLength(peerSecret) < MIN_PEER_SECRET_BYTES) throw new UsageError(`--peer-secret is too short: at least ${MIN_PEER_SECRET_BYTES} bytes`);
  if (peerUrl) {
    let url: URL;
    try {
      url = new URL(peerUrl);
    } catch {
      throw new UsageError(`--peer-url "${peerUrl}" is not a URL (want http(s)://HOST:PORT)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--peer-url "${peerUrl}": want http:// or https://`);
    return peerUrl;
  }
  const { host, port } = parseHostPort(peerListen);
  if (host === '0.0.0.0' || host === '::') throw new UsageError(`--peer-listen ${peerListen} is a wildcard address: give --peer-url, the address other edges reach this one at`);
  return port === 0 ? '' : `${tls ? 'https' : 'http'}://${formatHostPort(host, port)}`;
}

/** Applies the defaults of `init` (one per value, stated here) and refuses what cannot run (UsageError). */
export function edgeConfig(init: EdgeInit): EdgeConfig {
  const tokens = new TokenAuthority(init.tokens ?? []);
  const listen = parseHostPort(init.listen ?? '8080', defaultListenHost(tokens.open));
  const grpcListen = parseHostPort(init.grpcListen ?? '8091', defaultListenHost(tokens.open));
  const transports = init.transports ?? EDGE_TRANSPORTS;
  const agentListeners = [{ setting: 'listen', ...listen }, ...(transports.includes('grpc') ? [{ setting: 'grpc-listen', ...grpcListen }] : [])];
  checkOpenExposure(agentListeners, tokens.open, init.allowOpen === true);
  const limits: EdgeLimits = { ...DEFAULT_LIMITS, ...init.limits };
  checkLimits(limits);
  if (init.tls) checkTlsIdentity(init.tls);
  if (transports.length === 0) throw new UsageError('an edge must offer at least one transport');
  const edgeId = init.edgeId ?? defaultEdgeId();
  if (!EDGE_ID_PATTERN.test(edgeId)) throw new UsageError('edge-id: want 1-64 letters, digits, dots, hyphens or underscores');
  const peerUrl = checkPeerSettings(init.peerListen, init.peerSecret, init.peerUrl, init.tls !== undefined);
  return {
    domain: (init.domain ?? 'localhost').toLowerCase(),
    registryUrl: registryUrlOf(init.registryUrl),
    edgeId,
    scheme: init.tls ? 'https' : 'http',
    tokens,
    listen,
    grpcListen,
    transports,
    limits,
    pingIntervalMs: init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
    wsWindowBytes: init.wsWindowBytes ?? DEFAULT_WS_WINDOW_BYTES,
    gracePeriodMs: init.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS,
    reconnectGraceMs: init.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS,
    startupGraceMs: init.startupGraceMs ?? 0,
    tcpPorts: portRangesOf('tcp-ports', init.tcpPorts),
    udpPorts: portRangesOf('udp-ports', init.udpPorts),
    tcpIdleTimeoutMs: init.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
    tcpMaxConnections: init.tcpMaxConnections ?? DEFAULT_TCP_MAX_CONNECTIONS,
    udpIdleTimeoutMs: init.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS,
    udpMaxFlows: init.udpMaxFlows ?? DEFAULT_UDP_MAX_FLOWS,
    peer: init.peerListen ? { listen: parseHostPort(init.peerListen), secret: init.peerSecret!, url: peerUrl || undefined } : undefined,
  };
}
