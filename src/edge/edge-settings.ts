import { DEFAULT_PING_INTERVAL_MS } from '../actors/heartbeat.js';
import { DEFAULT_MAX_EXCHANGES } from '../actors/agent-session.js';
import { LOG_FORMATS, LOG_LEVELS } from '../logger.js';
import {
  parseAddress,
  parseInt,
  parseListOf,
  parseOneOf,
  parseString,
  type SettingSpec,
  type SettingValues,
} from '../settings.js';
import { DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { parseTokenEntries, type TokenEntry } from './tokens.js';
import { EDGE_TRANSPORTS, type EdgeInit, type EdgeTransport } from './edge-server.js';
import { DEFAULT_LIMITS, type EdgeLimits } from './limits.js';

const DOMAIN = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** Every setting of `jetty edge`: flag, JETTY_* variable and config key, with its default. */
export const EDGE_SETTINGS: readonly SettingSpec[] = [
  { name: 'listen', help: 'public HTTP listener', default: '0.0.0.0:8080', parse: parseAddress() },
  { name: 'grpc-listen', help: 'gRPC listener for agents', default: '0.0.0.0:8091', parse: parseAddress() },
  { name: 'grpc-public-port', help: 'gRPC port agents are told to dial, 0 = the bound one', default: 0, parse: parseInt(0, 65535) },
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
  { name: 'grace-period', help: 'drain: ms in-flight exchanges get after SIGTERM', default: 30_000, parse: parseInt(0, 3_600_000) },
  { name: 'reconnect-grace', help: 'ms requests for a reconnecting tunnel are held', default: 5_000, parse: parseInt(0, 600_000) },
  { name: 'max-agents', help: 'agent sessions per edge', default: DEFAULT_LIMITS.maxAgents, parse: parseInt(1, 1_000_000) },
  { name: 'max-exchanges-per-agent', help: 'exchanges in flight per agent (503 beyond)', default: DEFAULT_MAX_EXCHANGES, parse: parseInt(1, 100_000) },
  { name: 'tunnel-max-exchanges', help: 'exchanges in flight per tunnel (429 beyond)', default: DEFAULT_LIMITS.tunnelMaxExchanges, parse: parseInt(1, 1_000_000) },
  { name: 'tunnel-rps', help: 'requests per second per tunnel, 0 = unlimited (429 beyond)', default: DEFAULT_LIMITS.tunnelRps, parse: parseInt(0, 1_000_000) },
  { name: 'max-header-bytes', help: 'request head size (431 beyond)', default: DEFAULT_LIMITS.maxHeaderBytes, parse: parseInt(1024, 1024 * 1024) },
  { name: 'max-header-count', help: 'request header lines (431 beyond)', default: DEFAULT_LIMITS.maxHeaderCount, parse: parseInt(1, 10_000) },
  { name: 'header-timeout', help: 'ms a client may take to send its request head', default: DEFAULT_LIMITS.headerTimeoutMs, parse: parseInt(1000, 600_000) },
  { name: 'idle-timeout', help: 'ms an exchange may pass with no bytes either way; no total deadline', default: DEFAULT_LIMITS.idleTimeoutMs, parse: parseInt(1000, 86_400_000) },
  { name: 'keep-alive-timeout', help: 'ms a public connection may sit idle between requests', default: DEFAULT_LIMITS.keepAliveTimeoutMs, parse: parseInt(1000, 600_000) },
  { name: 'max-connections-per-ip', help: 'open public connections and exchanges per client address', default: DEFAULT_LIMITS.maxConnectionsPerIp, parse: parseInt(1, 1_000_000) },
  { name: 'h2-max-streams', help: 'HTTP/2 streams per agent connection', default: DEFAULT_LIMITS.h2MaxStreams, parse: parseInt(16, 10_000) },
  {
    name: 'trusted-proxies',
    help: 'peers whose X-Forwarded-* and X-Request-Id are kept',
    default: [],
    parse: (raw) => (Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean)),
  },
  { name: 'tokens', help: 'agent tokens: [{hash, names}] (see jetty token create)', default: [], parse: parseTokenEntries, fileOnly: true, secret: true },
  { name: 'log-level', help: 'log level', default: 'info', parse: parseOneOf(LOG_LEVELS) },
  { name: 'log-format', help: 'json, pretty, or auto (pretty on a TTY)', default: 'auto', parse: parseOneOf(LOG_FORMATS) },
];

/** Maps resolved settings onto the edge's init. */
export function edgeInitFrom(v: SettingValues): Omit<EdgeInit, 'logger'> {
  const limits: EdgeLimits = {
    maxAgents: v['max-agents'] as number,
    tunnelMaxExchanges: v['tunnel-max-exchanges'] as number,
    tunnelRps: v['tunnel-rps'] as number,
    maxHeaderBytes: v['max-header-bytes'] as number,
    maxHeaderCount: v['max-header-count'] as number,
    headerTimeoutMs: v['header-timeout'] as number,
    idleTimeoutMs: v['idle-timeout'] as number,
    keepAliveTimeoutMs: v['keep-alive-timeout'] as number,
    h2MaxStreams: v['h2-max-streams'] as number,
    maxConnectionsPerIp: v['max-connections-per-ip'] as number,
  };
  return {
    listen: v.listen as string,
    grpcListen: v['grpc-listen'] as string,
    grpcPublicPort: (v['grpc-public-port'] as number) || undefined,
    adminListen: (v['admin-listen'] as string) || undefined,
    domain: v.domain as string,
    transports: v.transports as EdgeTransport[],
    pingIntervalMs: v['ping-interval'] as number,
    wsWindowBytes: v['ws-window'] as number,
    gracePeriodMs: v['grace-period'] as number,
    reconnectGraceMs: v['reconnect-grace'] as number,
    maxExchangesPerAgent: v['max-exchanges-per-agent'] as number,
    trustedProxies: v['trusted-proxies'] as string[],
    tokens: v.tokens as TokenEntry[],
    limits,
  };
}
