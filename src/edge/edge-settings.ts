import { DEFAULT_PING_INTERVAL_MS } from '../actors/heartbeat.js';
import { DEFAULT_MAX_EXCHANGES } from '../actors/agent-session.js';
import { formatHostPort, parseHostPort } from '../address.js';
import { UsageError } from '../errors.js';
import { LOG_FORMATS, LOG_LEVELS } from '../logger.js';
import {
  DEFAULT_GRACE_PERIOD_MS,
  DEFAULT_RECONNECT_GRACE_MS,
  DEFAULT_STARTUP_GRACE_MS,
  parseAddress,
  parseBool,
  parseInt,
  parseListOf,
  parseOneOf,
  parseString,
  readSettingFile,
  type SettingSpec,
  type SettingValues,
} from '../settings.js';
import { DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { parseCidrList } from './cidr-set.js';
import { parseTokenEntries, type TokenEntry } from './tokens.js';
import { formatPortRanges, parsePortRanges } from './port-ranges.js';
import { DEFAULT_TCP_IDLE_TIMEOUT_MS, DEFAULT_TCP_MAX_CONNECTIONS } from './tcp-listener.js';
import { DEFAULT_UDP_IDLE_TIMEOUT_MS, DEFAULT_UDP_MAX_FLOWS } from './udp-listener.js';
import { checkPeerSettings, EDGE_TRANSPORTS, type EdgeInit, type EdgeTransport } from './edge-config.js';
import { isValidTunnelName } from '../tunnel-name.js';
import { MEMORY_REGISTRY, parseRegistryUrl, redactRegistryUrl } from '../actors/redis-leases.js';
import { EDGE_ID_PATTERN } from './edge-config.js';
import { DEFAULT_RESERVED_NAMES } from './agent-admission.js';
import { checkOpenExposure, defaultListenHost, type AgentListener } from './exposure.js';
import { MIN_PEER_SECRET_BYTES } from './peer-auth.js';
import { DEFAULT_LIMITS, MAX_HEADER_BYTES_CAP, MAX_HEADER_COUNT_CAP, type EdgeLimits } from './limits.js';

const DOMAIN = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** `tcp-ports` / `udp-ports`: checked ranges, kept in their canonical text form (`20000-20099,20200`). */
function portRangesSetting(raw: unknown): string {
  return formatPortRanges(parsePortRanges(raw));
}

/** Every setting of `jetty edge`: flag, JETTY_* variable and config key, with its default. */
export const EDGE_SETTINGS: readonly SettingSpec[] = [
  { name: 'listen', help: 'public HTTP listener; a bare port listens on 127.0.0.1 without tokens, 0.0.0.0 with', default: '8080', parse: parseAddress() },
  { name: 'grpc-listen', help: 'gRPC listener for agents; a bare port as for listen', default: '8091', parse: parseAddress() },
  { name: 'open', help: 'without tokens, accept agents on non-loopback listeners anyway', default: false, parse: parseBool, boolean: true },
  { name: 'grpc-public-port', help: 'gRPC port agents are told to dial, 0 = the bound one', default: 0, parse: parseInt(0, 65535) },
  { name: 'tls-cert', help: 'PEM certificate chain: HTTPS on the public listener, TLS on gRPC; needs tls-key', default: '', parse: parseString },
  { name: 'tls-key', help: 'PEM private key of tls-cert', default: '', parse: parseString },
  { name: 'peer-listen', help: 'edge-to-edge listener: other edges of a cluster forward requests for tunnels held here; empty = off', default: '', parse: parseAddress(true) },
  { name: 'peer-secret', help: `secret shared by the edges of a cluster, at least ${MIN_PEER_SECRET_BYTES} bytes`, default: '', parse: parseString, secret: true },
  { name: 'peer-secret-file', help: 'file whose first line is peer-secret (instead of the value)', default: '', parse: parseString },
  { name: 'peer-url', help: "URL other edges reach this one's peer listener at; empty = http(s)://PEER-LISTEN", default: '', parse: parseString },
  { name: 'peer-ca', help: 'PEM CA that signs the other edges\' certificates (https:// peers), instead of the system roots', default: '', parse: parseString },
  { name: 'admin-listen', help: 'health and metrics listener, empty = off', default: '127.0.0.1:9090', parse: parseAddress(true) },
  {
    name: 'domain',
    help: 'tunnels are served at NAME.DOMAIN',
    default: 'localhost',
    parse: (raw) => {
      const d = parseString(raw).toLowerCase();
      if (!DOMAIN.test(d)) throw new Error('want a DNS name such as tunnels.example.com');
      return d;
    },
  },
  { name: 'transports', help: 'transports offered to agents', default: [...EDGE_TRANSPORTS], parse: parseListOf(EDGE_TRANSPORTS) },
  { name: 'ping-interval', help: 'liveness ping interval in ms; 3 missed = dead', default: DEFAULT_PING_INTERVAL_MS, parse: parseInt(100, 3_600_000) },
  { name: 'ws-window', help: 'WebSocket credit window per exchange, bytes', default: DEFAULT_WS_WINDOW_BYTES, parse: parseInt(MIN_WS_WINDOW_BYTES, 1 << 30) },
  { name: 'grace-period', help: 'drain: ms in-flight exchanges get after SIGTERM', default: DEFAULT_GRACE_PERIOD_MS, parse: parseInt(0, 3_600_000) },
  { name: 'reconnect-grace', help: 'ms requests for a reconnecting tunnel are held', default: DEFAULT_RECONNECT_GRACE_MS, parse: parseInt(0, 600_000) },
  { name: 'startup-grace', help: 'ms after start that requests for an unknown tunnel wait for its agent', default: DEFAULT_STARTUP_GRACE_MS, parse: parseInt(0, 600_000) },
  {
    name: 'registry',
    help: 'where tunnels are registered: memory (this edge alone) or redis://HOST:PORT/DB shared by several edges',
    default: MEMORY_REGISTRY,
    parse: (raw) => parseRegistryUrl(parseString(raw)),
    show: redactRegistryUrl,
  },
  {
    name: 'edge-id',
    help: 'this edge\'s name in the shared registry; empty = HOSTNAME-PID',
    default: '',
    parse: (raw) => {
      const id = parseString(raw);
      if (id !== '' && !EDGE_ID_PATTERN.test(id)) throw new Error('want 1-64 letters, digits, dots, hyphens or underscores');
      return id;
    },
  },
  { name: 'max-agents', help: 'agent sessions per edge', default: DEFAULT_LIMITS.maxAgents, parse: parseInt(1, 1_000_000) },
  { name: 'max-agents-per-token', help: 'agent sessions per token (beyond: refused, agent retries)', default: DEFAULT_LIMITS.maxAgentsPerToken, parse: parseInt(1, 1_000_000) },
  { name: 'max-agents-per-ip', help: 'agent sessions per source address (beyond: refused, agent retries)', default: DEFAULT_LIMITS.maxAgentsPerIp, parse: parseInt(1, 1_000_000) },
  { name: 'max-exchanges-per-agent', help: 'exchanges in flight per agent (503 beyond)', default: DEFAULT_MAX_EXCHANGES, parse: parseInt(1, 100_000) },
  { name: 'tunnel-max-exchanges', help: 'exchanges in flight per tunnel (429 beyond)', default: DEFAULT_LIMITS.tunnelMaxExchanges, parse: parseInt(1, 1_000_000) },
  { name: 'tunnel-rps', help: 'requests per second per tunnel, 0 = unlimited (429 beyond)', default: DEFAULT_LIMITS.tunnelRps, parse: parseInt(0, 1_000_000) },
  {
    name: 'max-header-bytes',
    help: `request head size (431 beyond), at most ${MAX_HEADER_BYTES_CAP}`,
    default: DEFAULT_LIMITS.maxHeaderBytes,
    parse: (raw) => {
      try {
        return parseInt(1024, MAX_HEADER_BYTES_CAP)(raw);
      } catch {
        throw new Error(`want 1024 to ${MAX_HEADER_BYTES_CAP}: a request head must fit one tunnel frame`);
      }
    },
  },
  { name: 'max-header-count', help: 'request header lines (431 beyond)', default: DEFAULT_LIMITS.maxHeaderCount, parse: parseInt(1, MAX_HEADER_COUNT_CAP) },
  { name: 'header-timeout', help: 'ms a client may take to send its request head', default: DEFAULT_LIMITS.headerTimeoutMs, parse: parseInt(1000, 600_000) },
  { name: 'idle-timeout', help: 'ms an exchange may pass with no bytes either way; no total deadline', default: DEFAULT_LIMITS.idleTimeoutMs, parse: parseInt(1000, 86_400_000) },
  {
    name: 'upgrade-idle-timeout',
    help: 'ms an upgraded connection (WebSocket) may pass with no bytes either way',
    default: DEFAULT_LIMITS.upgradeIdleTimeoutMs,
    parse: parseInt(1000, 7 * 86_400_000),
  },
  { name: 'keep-alive-timeout', help: 'ms a public connection may sit idle between requests', default: DEFAULT_LIMITS.keepAliveTimeoutMs, parse: parseInt(1000, 600_000) },
  { name: 'max-connections-per-ip', help: 'open public connections and exchanges per client address', default: DEFAULT_LIMITS.maxConnectionsPerIp, parse: parseInt(1, 1_000_000) },
  { name: 'h2-max-streams', help: 'HTTP/2 streams per agent connection', default: DEFAULT_LIMITS.h2MaxStreams, parse: parseInt(16, 10_000) },
  { name: 'trusted-proxies', help: 'addresses or CIDR blocks (v4, v6) whose X-Forwarded-* and X-Request-Id are kept', default: [], parse: parseCidrList },
  {
    name: 'reserved-names',
    help: 'tunnel names refused unless a token lists them exactly; empty = none',
    default: [...DEFAULT_RESERVED_NAMES],
    parse: (raw) => {
      const names = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((n) => n.trim()).filter(Boolean);
      for (const n of names) if (!isValidTunnelName(n)) throw new Error(`"${n}" is not a tunnel name`);
      return names;
    },
  },
  { name: 'tcp-ports', help: 'public ports of TCP tunnels (20000-20099,20200), on the listen address; empty = off', default: '', parse: portRangesSetting },
  { name: 'udp-ports', help: 'public ports of UDP tunnels, as tcp-ports; empty = off', default: '', parse: portRangesSetting },
  { name: 'tcp-idle-timeout', help: 'ms a TCP tunnel connection may pass with no bytes either way', default: DEFAULT_TCP_IDLE_TIMEOUT_MS, parse: parseInt(1000, 86_400_000) },
  { name: 'tcp-max-connections', help: 'open public connections per TCP tunnel (reset beyond)', default: DEFAULT_TCP_MAX_CONNECTIONS, parse: parseInt(1, 1_000_000) },
  { name: 'udp-idle-timeout', help: 'ms a UDP flow (client address and port) may pass with no datagram either way', default: DEFAULT_UDP_IDLE_TIMEOUT_MS, parse: parseInt(1000, 86_400_000) },
  { name: 'udp-max-flows', help: 'flows per UDP tunnel (datagrams of new flows dropped beyond)', default: DEFAULT_UDP_MAX_FLOWS, parse: parseInt(1, 1_000_000) },
  // Not secret: only hashes are stored, and --check-config shows them whole so an operator can tell entries apart.
  { name: 'tokens', help: 'agent tokens: [{hash, names, ports}] (see jetty token create)', default: [], parse: parseTokenEntries, fileOnly: true },
  { name: 'log-level', help: 'log level', default: 'info', parse: parseOneOf(LOG_LEVELS) },
  { name: 'log-format', help: 'json, pretty, or auto (pretty on a TTY)', default: 'auto', parse: parseOneOf(LOG_FORMATS) },
];

/**
 * Completes resolved settings the way the edge will run them: a bare port in `listen` / `grpc-listen`
 * gets its host (loopback without tokens); an open edge exposed beyond loopback without `open` and
 * limits the protocol cannot carry are UsageErrors. --check-config prints the result.
 */
export function effectiveEdgeSettings(v: SettingValues): SettingValues {
  const open = (v.tokens as TokenEntry[]).length === 0;
  const out = { ...v };
  const listeners: AgentListener[] = [];
  for (const setting of ['listen', 'grpc-listen']) {
    const { host, port } = parseHostPort(v[setting] as string, defaultListenHost(open));
    out[setting] = formatHostPort(host, port);
    if (setting === 'listen' || (v.transports as string[]).includes('grpc')) listeners.push({ setting, host, port });
  }
  checkOpenExposure(listeners, open, v.open === true);
  if ((v['tls-cert'] === '') !== (v['tls-key'] === '')) throw new UsageError('--tls-cert and --tls-key go together: give both or neither');
  if (v['peer-secret'] !== '' && v['peer-secret-file'] !== '') throw new UsageError('--peer-secret and --peer-secret-file: give one or the other');
  if (v['peer-secret-file'] !== '') out['peer-secret'] = readSettingFile('peer-secret-file', v['peer-secret-file'] as string).toString('utf8').split(/\r?\n/)[0];
  out['peer-url'] = checkPeerSettings(v['peer-listen'] as string, out['peer-secret'] as string, v['peer-url'] as string, v['tls-cert'] !== '') || v['peer-url'];
  return out;
}

/** Maps resolved settings onto the edge's init. */
export function edgeInitFrom(v: SettingValues): Omit<EdgeInit, 'logger'> {
  const limits: EdgeLimits = {
    maxAgents: v['max-agents'] as number,
    maxAgentsPerToken: v['max-agents-per-token'] as number,
    maxAgentsPerIp: v['max-agents-per-ip'] as number,
    tunnelMaxExchanges: v['tunnel-max-exchanges'] as number,
    tunnelRps: v['tunnel-rps'] as number,
    maxHeaderBytes: v['max-header-bytes'] as number,
    maxHeaderCount: v['max-header-count'] as number,
    headerTimeoutMs: v['header-timeout'] as number,
    idleTimeoutMs: v['idle-timeout'] as number,
    upgradeIdleTimeoutMs: v['upgrade-idle-timeout'] as number,
    keepAliveTimeoutMs: v['keep-alive-timeout'] as number,
    h2MaxStreams: v['h2-max-streams'] as number,
    maxConnectionsPerIp: v['max-connections-per-ip'] as number,
  };
  return {
    listen: v.listen as string,
    grpcListen: v['grpc-listen'] as string,
    allowOpen: v.open as boolean,
    reservedNames: v['reserved-names'] as string[],
    grpcPublicPort: (v['grpc-public-port'] as number) || undefined,
    adminListen: (v['admin-listen'] as string) || undefined,
    metrics: Boolean(v['admin-listen']),
    domain: v.domain as string,
    transports: v.transports as EdgeTransport[],
    pingIntervalMs: v['ping-interval'] as number,
    wsWindowBytes: v['ws-window'] as number,
    gracePeriodMs: v['grace-period'] as number,
    reconnectGraceMs: v['reconnect-grace'] as number,
    startupGraceMs: v['startup-grace'] as number,
    registryUrl: v.registry as string,
    edgeId: (v['edge-id'] as string) || undefined,
    maxExchangesPerAgent: v['max-exchanges-per-agent'] as number,
    trustedProxies: v['trusted-proxies'] as string[],
    tokens: v.tokens as TokenEntry[],
    tcpPorts: v['tcp-ports'] as string,
    udpPorts: v['udp-ports'] as string,
    tcpIdleTimeoutMs: v['tcp-idle-timeout'] as number,
    tcpMaxConnections: v['tcp-max-connections'] as number,
    udpIdleTimeoutMs: v['udp-idle-timeout'] as number,
    udpMaxFlows: v['udp-max-flows'] as number,
    peerListen: (v['peer-listen'] as string) || undefined,
    peerSecret: (v['peer-secret'] as string) || undefined,
    peerUrl: (v['peer-url'] as string) || undefined,
    peerCa: v['peer-ca'] ? readSettingFile('peer-ca', v['peer-ca'] as string) : undefined,
    tls: v['tls-cert'] ? { cert: readSettingFile('tls-cert', v['tls-cert'] as string), key: readSettingFile('tls-key', v['tls-key'] as string) } : undefined,
    limits,
  };
}
