import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Agent, AGENT_TRANSPORTS, AGENT_VERSION, WS_CODEC_NAMES, WS_MASK_NAMES, type AgentTransport, type WsCodecChoice, type WsMaskChoice } from './agent/agent.js';
import { DEFAULT_PING_INTERVAL_MS } from './actors/heartbeat.js';
import { DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES } from './streams/ws-mux.js';
import { parseHostPort } from './address.js';
import { Edge, EDGE_TRANSPORTS, type EdgeTransport } from './edge/edge-server.js';
import { UsageError, toError } from './errors.js';
import { createLogger, LOG_LEVELS } from './logger.js';
import { isValidTunnelName } from './tunnel-name.js';

/** Exit codes (DESIGN.md §1). */
const EXIT_OK = 0;
const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

const MAIN_HELP = `Usage: jetty <command> [options]

Commands:
  edge            run the public edge server
  http <target>   expose a local HTTP service through an edge

Run 'jetty <command> --help' for the options of a command.
`;

const EDGE_HELP = `Usage: jetty edge [options]

Runs the public edge: tunnels are served at http://NAME.DOMAIN:PORT/.

Options:
  --listen HOST:PORT       public HTTP listener        (JETTY_LISTEN, default 0.0.0.0:8080)
  --grpc-listen HOST:PORT  gRPC listener for agents    (JETTY_GRPC_LISTEN, default 0.0.0.0:8091)
  --grpc-public-port PORT  gRPC port agents are told to dial (JETTY_GRPC_PUBLIC_PORT, default: the bound one)
  --domain DOMAIN          tunnels are NAME.DOMAIN     (JETTY_DOMAIN, default localhost)
  --transports LIST        offered to agents: grpc,websocket (JETTY_TRANSPORTS, default both)
  --ping-interval MS       liveness ping interval; 3 missed = dead (JETTY_PING_INTERVAL, default ${DEFAULT_PING_INTERVAL_MS})
  --ws-window BYTES        WebSocket credit window per exchange (JETTY_WS_WINDOW, default ${DEFAULT_WS_WINDOW_BYTES})
  --log-level LEVEL        ${LOG_LEVELS.join('|')}  (JETTY_LOG_LEVEL, default info)
  -h, --help               show this help
`;

const HTTP_HELP = `Usage: jetty http <port|host:port|url> [options]

Makes a local HTTP service reachable through an edge and prints
  Forwarding http://NAME.DOMAIN:PORT -> http://localhost:PORT
once traffic can flow.

Options:
  --edge URL           the edge's public URL            (JETTY_EDGE, default http://127.0.0.1:8080)
  --name NAME          tunnel name, a DNS label         (JETTY_NAME, default: random, e.g. swift-otter-4821)
  --transport MODE     ${AGENT_TRANSPORTS.join('|')}        (JETTY_TRANSPORT, default auto: gRPC, else WebSocket)
  --ws-codec CODEC     ${WS_CODEC_NAMES.join('|')} frames on WebSocket     (JETTY_WS_CODEC, default proto)
  --ws-window BYTES    WebSocket credit window per exchange (JETTY_WS_WINDOW, default ${DEFAULT_WS_WINDOW_BYTES})
  --ws-mask MASK       ${WS_MASK_NAMES.join('|')} WebSocket masking key   (JETTY_WS_MASK, default zero: see README)
  --log-level LEVEL    ${LOG_LEVELS.join('|')}  (JETTY_LOG_LEVEL, default info)
  -h, --help           show this help
`;

type Values = Record<string, string | boolean | undefined>;

function parse(argv: string[], options: ParseArgsConfig['options'], allowPositionals: boolean): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals });
    return { values: values as Values, positionals };
  } catch (err) {
    // parseArgs messages name the flag; keep the first line only.
    throw new UsageError(toError(err).message.split('\n')[0], { cause: err });
  }
}

/** flag > JETTY_* environment variable > default. */
function setting(values: Values, flag: string, env: string, fallback: string): string {
  const v = values[flag];
  if (typeof v === 'string') return v;
  return process.env[env] ?? fallback;
}

/** A whole number within [min, max], or UsageError naming the flag. */
function intSetting(values: Values, flag: string, env: string, fallback: number, min: number, max: number): number {
  const text = setting(values, flag, env, String(fallback));
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`invalid --${flag} "${text}" (want a whole number from ${min} to ${max})`);
  return n;
}

function logLevel(values: Values): string {
  const level = setting(values, 'log-level', 'JETTY_LOG_LEVEL', 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`invalid --log-level "${level}" (want ${LOG_LEVELS.join('|')})`);
  return level;
}

/** `3000`, `host:3000` or `http://host:3000` → origin URL. */
export function parseOrigin(target: string): URL {
  let text = target;
  if (/^\d+$/.test(target)) text = `http://localhost:${target}`;
  else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) text = `http://${target}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`invalid target "${target}" (want a port, host:port or http:// URL)`);
  }
  if (url.protocol !== 'http:') throw new UsageError(`unsupported target scheme "${url.protocol}" (only http:// origins)`);
  const port = Number(url.port || 80);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`invalid target port in "${target}"`);
  return url;
}

function onSignals(close: () => Promise<unknown>): void {
  let closing = false;
  const handler = (): void => {
    if (closing) process.exit(EXIT_OK);
    closing = true;
    void close().then(() => process.exit(EXIT_OK));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

async function runEdge(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      listen: { type: 'string' },
      'grpc-listen': { type: 'string' },
      domain: { type: 'string' },
      transports: { type: 'string' },
      'grpc-public-port': { type: 'string' },
      'ping-interval': { type: 'string' },
      'ws-window': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(EDGE_HELP);
    return EXIT_OK;
  }
  const listen = setting(values, 'listen', 'JETTY_LISTEN', '0.0.0.0:8080');
  const grpcListen = setting(values, 'grpc-listen', 'JETTY_GRPC_LISTEN', '0.0.0.0:8091');
  const domain = setting(values, 'domain', 'JETTY_DOMAIN', 'localhost').toLowerCase();
  parseHostPort(listen);
  parseHostPort(grpcListen);
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(domain)) throw new UsageError(`invalid --domain "${domain}"`);
  const transports = setting(values, 'transports', 'JETTY_TRANSPORTS', EDGE_TRANSPORTS.join(','))
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of transports) {
    if (!(EDGE_TRANSPORTS as readonly string[]).includes(t)) throw new UsageError(`invalid --transports entry "${t}" (want ${EDGE_TRANSPORTS.join(',')})`);
  }
  if (transports.length === 0) throw new UsageError('--transports must name at least one transport');
  const pingIntervalMs = intSetting(values, 'ping-interval', 'JETTY_PING_INTERVAL', DEFAULT_PING_INTERVAL_MS, 100, 3_600_000);
  const wsWindowBytes = intSetting(values, 'ws-window', 'JETTY_WS_WINDOW', DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES, 1 << 30);
  const grpcPublicPort = intSetting(values, 'grpc-public-port', 'JETTY_GRPC_PUBLIC_PORT', 0, 0, 65535) || undefined;
  const logger = createLogger(logLevel(values), 'edge');
  const edge = await Edge.start({ listen, grpcListen, grpcPublicPort, domain, logger, transports: transports as EdgeTransport[], pingIntervalMs, wsWindowBytes });
  const offered = [transports.includes('grpc') ? `grpc on port ${edge.grpcPort}` : '', transports.includes('websocket') ? 'websocket' : ''].filter(Boolean).join(', ');
  process.stdout.write(`Jetty edge on http://${domain}:${edge.publicPort} (agents: ${offered})\n`);
  onSignals(() => edge.close());
  await new Promise(() => undefined);
  return EXIT_OK;
}

async function runHttp(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      edge: { type: 'string' },
      name: { type: 'string' },
      transport: { type: 'string' },
      'ws-codec': { type: 'string' },
      'ws-window': { type: 'string' },
      'ws-mask': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(HTTP_HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError('jetty http takes one target: a port, host:port or URL');
  const origin = parseOrigin(positionals[0]);
  const edgeText = setting(values, 'edge', 'JETTY_EDGE', 'http://127.0.0.1:8080');
  let edgeUrl: URL;
  try {
    edgeUrl = new URL(edgeText);
  } catch {
    throw new UsageError(`invalid --edge "${edgeText}" (want a URL such as http://127.0.0.1:8080)`);
  }
  const nameText = setting(values, 'name', 'JETTY_NAME', '');
  const name = nameText === '' ? undefined : nameText;
  if (name !== undefined && !isValidTunnelName(name)) {
    throw new UsageError(`invalid --name "${name}" (lower-case letters, digits and inner hyphens, at most 63)`);
  }
  const transport = setting(values, 'transport', 'JETTY_TRANSPORT', 'auto');
  if (!(AGENT_TRANSPORTS as readonly string[]).includes(transport)) {
    throw new UsageError(`invalid --transport "${transport}" (want ${AGENT_TRANSPORTS.join('|')})`);
  }
  const wsCodec = setting(values, 'ws-codec', 'JETTY_WS_CODEC', 'proto');
  if (!(WS_CODEC_NAMES as readonly string[]).includes(wsCodec)) throw new UsageError(`invalid --ws-codec "${wsCodec}" (want ${WS_CODEC_NAMES.join('|')})`);
  const wsWindowBytes = intSetting(values, 'ws-window', 'JETTY_WS_WINDOW', DEFAULT_WS_WINDOW_BYTES, MIN_WS_WINDOW_BYTES, 1 << 30);
  const wsMask = setting(values, 'ws-mask', 'JETTY_WS_MASK', 'zero');
  if (!(WS_MASK_NAMES as readonly string[]).includes(wsMask)) throw new UsageError(`invalid --ws-mask "${wsMask}" (want ${WS_MASK_NAMES.join('|')})`);
  const logger = createLogger(logLevel(values), 'agent');
  const agent = await Agent.start({
    edge: edgeUrl,
    origin,
    name,
    transport: transport as AgentTransport,
    wsCodec: wsCodec as WsCodecChoice,
    wsWindowBytes,
    wsMask: wsMask as WsMaskChoice,
    logger,
  });
  const shown = `${origin.protocol}//${origin.host}`;
  process.stdout.write(`Tunnel ${agent.name} connected to ${edgeUrl.origin} over ${agent.transport}\n`);
  process.stdout.write(`Forwarding ${agent.url} -> ${shown}\n`);
  let closing = false;
  onSignals(() => {
    closing = true;
    return agent.close();
  });
  const reason = await agent.closed;
  if (closing) return EXIT_OK;
  process.stderr.write(`jetty: ${reason.message}\n`);
  return EXIT_RUNTIME;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'edge':
      return runEdge(rest);
    case 'http':
      return runHttp(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${AGENT_VERSION}\n`);
      return EXIT_OK;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(MAIN_HELP);
      return command === undefined ? EXIT_USAGE : EXIT_OK;
    default:
      throw new UsageError(`unknown command "${command}" (want edge or http)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = toError(err);
    process.stderr.write(`jetty: ${e.message}\n`);
    process.exit(e instanceof UsageError ? EXIT_USAGE : EXIT_RUNTIME);
  },
);
