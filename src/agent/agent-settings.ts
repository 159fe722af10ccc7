import { LOG_FORMATS, LOG_LEVELS } from '../logger.js';
import { DEFAULT_GRACE_PERIOD_MS, parseAddress, parseBool, parseInt, parseOneOf, parseString, type SettingSpec } from '../settings.js';
import { DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { isValidTunnelName } from '../tunnel-name.js';
import { AGENT_TRANSPORTS, WS_CODEC_NAMES, WS_MASK_NAMES } from './negotiate.js';
import { parseHostHeader } from './origin-target.js';
import { PROXY_PROTOCOL_VERSIONS } from './proxy-protocol.js';

/** Every setting of `jetty http`: flag, JETTY_* variable and config key, with its default. */
export const AGENT_SETTINGS: readonly SettingSpec[] = [
  {
    name: 'edge',
    help: "the edge's public URL",
    default: 'http://127.0.0.1:8080',
    parse: (raw) => {
      const text = parseString(raw);
      try {
        const url = new URL(text);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
        return text;
      } catch {
        throw new Error('want a URL such as http://127.0.0.1:8080');
      }
    },
  },
  {
    name: 'name',
    help: 'tunnel name, one DNS label; empty = the edge picks one (swift-otter-4821; dev-… for a dev-* token)',
    default: '',
    parse: (raw) => {
      const name = parseString(raw);
      if (name !== '' && !isValidTunnelName(name)) throw new Error('lower-case letters, digits and inner hyphens, at most 63');
      return name;
    },
  },
  { name: 'transport', help: 'auto (gRPC, else WebSocket), grpc or websocket', default: 'auto', parse: parseOneOf(AGENT_TRANSPORTS) },
  { name: 'token', help: 'agent token, when the edge requires one', default: '', parse: parseString, secret: true },
  { name: 'edge-ca', help: 'PEM CA that signs the edge certificate (https:// edge), instead of the system roots', default: '', parse: parseString },
  { name: 'insecure', help: 'send the token over plain http:// to a non-loopback edge anyway', default: false, parse: parseBool, boolean: true },
  { name: 'origin-insecure', help: 'https:// origin: accept a certificate that does not verify (self-signed)', default: false, parse: parseBool, boolean: true },
  { name: 'host-header', help: 'Host the origin sees: preserve (the public one), rewrite (the origin\'s host:port) or a host[:port]', default: 'preserve', parse: parseHostHeader },
  { name: 'ws-codec', help: 'WebSocket frames: proto or json (legacy)', default: 'proto', parse: parseOneOf(WS_CODEC_NAMES) },
  { name: 'ws-window', help: 'WebSocket credit window per exchange, bytes', default: DEFAULT_WS_WINDOW_BYTES, parse: parseInt(MIN_WS_WINDOW_BYTES, 1 << 30) },
  { name: 'ws-mask', help: 'WebSocket masking key: zero or random', default: 'zero', parse: parseOneOf(WS_MASK_NAMES) },
  { name: 'admin-listen', help: 'readiness listener (/readyz), empty = off', default: '', parse: parseAddress(true) },
  { name: 'grace-period', help: 'ms in-flight exchanges get after SIGTERM', default: DEFAULT_GRACE_PERIOD_MS, parse: parseInt(0, 3_600_000) },
  { name: 'log-level', help: 'log level', default: 'info', parse: parseOneOf(LOG_LEVELS) },
  { name: 'log-format', help: 'json, pretty, or auto (pretty on a TTY)', default: 'auto', parse: parseOneOf(LOG_FORMATS) },
  {
    name: 'log-file',
    help: 'append log lines to this file; empty = stderr, or jetty-agent-PID.log in the temp folder while the live status view is up',
    default: '',
    parse: parseString,
  },
];

/** `jetty udp`: the agent's settings and the public port to ask for. */
export const UDP_SETTINGS: readonly SettingSpec[] = [
  // What only an HTTP origin has (TLS to it, its Host) is not offered.
  ...AGENT_SETTINGS.filter((s) => s.name !== 'origin-insecure' && s.name !== 'host-header'),
  { name: 'remote-port', help: 'public port to ask the edge for; 0 = any free one of its tcp-ports / udp-ports', default: 0, parse: parseInt(0, 65_535) },
];

/** `jetty tcp`: those of `jetty udp`, and PROXY protocol. */
export const TCP_SETTINGS: readonly SettingSpec[] = [
  ...UDP_SETTINGS,
  { name: 'proxy-protocol', help: "send the public client's address to the origin first: v1 or v2 (PROXY protocol); empty = off", default: '', parse: parseOneOf(['', ...PROXY_PROTOCOL_VERSIONS]) },
];
