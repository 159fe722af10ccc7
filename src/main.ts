import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AgentInit } from './agent/agent.js';
import type { ProxyProtocolVersion } from './agent/proxy-protocol.js';
import type { AgentTransport, WsCodecChoice, WsMaskChoice } from './agent/negotiate.js';
import { ORIGIN_DEFAULT_PORTS, ORIGIN_SCHEMES } from './agent/origin-target.js';
import { StatusView } from './agent/status-view.js';
import { formatHostPort, parseHostPort } from './address.js';
import { DemoOrigin, DEMO_ORIGIN_DEFAULT_HOST, DEMO_ORIGIN_DEFAULT_PORT } from './demo-origin.js';
import type { Edge } from './edge/edge-server.js';
import { parsePortRanges, portsOf } from './edge/port-ranges.js';
import { createToken, isValidNamePattern, NAME_PATTERN_RULE } from './edge/tokens.js';
import { AdminServer } from './admin-server.js';
import { AbortError, UsageError, toError } from './errors.js';
import { startGcBudget } from './gc-budget.js';
import { listenFor } from './listen-failure.js';
import { createLogger, routeGrpcLogs, whenWritten, type LogFormat, type Logger } from './logger.js';
import { argsError, suggestion } from './did-you-mean.js';
import { printable } from './printable.js';
import { VERSION } from './version.js';
import type { AbortOptions } from './wait.js';
import {
  argsConfig,
  loadConfigFile,
  printableSettings,
  readSettingFile,
  resolveSettings,
  helpRows,
  settingsHelp,
  type HelpRow,
  type SettingSpec,
  type SettingValues,
} from './settings.js';

/*
 * The edge's and the agent's modules are imported by the command that runs them, one place each
 * (edgeModules, agentModules): a process loads only its own side. An agent that also loaded the
 * edge (ioredis, prom-client, the router…) started ≈ 25 MiB larger and ≈ 100 ms later.
 */

/** The modules `jetty edge` runs on (settings for its flags and help, the server). */
async function edgeModules() {
  const [settings, server] = await Promise.all([import('./edge/edge-settings.js'), import('./edge/edge-server.js')]);
  return { ...settings, Edge: server.Edge };
}

/** The modules `jetty http|tcp|udp` run on (settings for their flags and help, the agent). */
async function agentModules() {
  const [settings, agent] = await Promise.all([import('./agent/agent-settings.js'), import('./agent/agent.js')]);
  return { ...settings, Agent: agent.Agent };
}
type AgentModules = Awaited<ReturnType<typeof agentModules>>;

/** The commands of `jetty`, for the did-you-mean of a mistyped one. */
const COMMANDS = ['edge', 'http', 'tcp', 'udp', 'token', 'demo-origin'];

/** Exit codes (DESIGN.md §1). */
const EXIT_OK = 0;
const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

/** Help rows every command shares. */
const CONFIG_ROW: HelpRow = ['--config FILE', 'YAML configuration file'];
const HELP_ROW: HelpRow = ['-h, --help', 'show this help'];

const MAIN_HELP = `Usage: jetty <command> [options]

Commands:
${helpRows([
  ['edge', 'run the public edge server'],
  ['http <target>', 'expose a local HTTP service through an edge'],
  ['tcp <target>', 'expose a local TCP service (database, SSH…) on a public port of an edge'],
  ['udp <target>', 'expose a local UDP service (DNS, game server…) on a public port of an edge'],
  ['token create', 'make an agent token and the config entry for the edge'],
  ['demo-origin', 'a tiny local HTTP service that shows each request it gets (for trying Jetty)'],
])}

Run 'jetty <command> --help' for the options of a command.
`;

const edgeHelp = (specs: readonly SettingSpec[]): string => `Usage: jetty edge [options]

Runs the public edge: tunnels are served at http://NAME.DOMAIN:PORT/.
Every option is also a JETTY_* variable and a key of the YAML --config file
(flag > environment > file > default).

Options:
${settingsHelp(specs, [CONFIG_ROW, ['--check-config', 'validate, print the effective configuration (tokens by hash and names), exit']], [HELP_ROW])}
`;

const httpHelp = (specs: readonly SettingSpec[]): string => `Usage: jetty http <port|host:port|url> [options]

url: http://host:port[/base], https://host:port[/base] (TLS) or h2c://host:port (HTTP/2, gRPC).

Makes a local HTTP service reachable through an edge and prints
  Forwarding http://NAME.DOMAIN:PORT -> http://localhost:PORT
once traffic can flow. Reconnects on its own when the connection is lost.

Options:
${settingsHelp(specs, [CONFIG_ROW], [HELP_ROW])}
`;

const tcpHelp = (specs: readonly SettingSpec[]): string => `Usage: jetty tcp <port|host:port> [options]

Makes a local TCP service reachable on a public port of an edge (one of its tcp-ports) and prints
  Forwarding tcp://DOMAIN:PORT -> localhost:5432
once traffic can flow. Reconnects on its own and gets its port back.

Options:
${settingsHelp(specs, [CONFIG_ROW], [HELP_ROW])}
`;

const udpHelp = (specs: readonly SettingSpec[]): string => `Usage: jetty udp <port|host:port> [options]

Makes a local UDP service reachable on a public port of an edge (one of its udp-ports) and prints
  Forwarding udp://DOMAIN:PORT -> localhost:53
once traffic can flow. Each client address and port is one flow; replies go back to it.

Options:
${settingsHelp(specs, [CONFIG_ROW], [HELP_ROW])}
`;

const TOKEN_HELP = `Usage: jetty token create [--name PATTERN]...

Prints a new agent token (give it to the agent as JETTY_TOKEN or in its --config file) and the entry to add
under "tokens:" in the edge's config file. Only the token's SHA-256 is stored on the edge.
PATTERN is a tunnel name or a prefix such as dev-* (default: *, any name).
`;

const DEMO_ORIGIN_HELP = `Usage: jetty demo-origin [--port N] [--host ADDRESS]

A tiny HTTP service to try a tunnel with: it serves no files, and answers every request with a
plain-text page of what reached it (method, path, headers, body size).

Options:
${helpRows([
  ['--port N', `port to listen on, 0 = any free one (default ${DEMO_ORIGIN_DEFAULT_PORT})`],
  ['--host ADDRESS', `address to listen on (default ${DEMO_ORIGIN_DEFAULT_HOST}: this machine only)`],
  HELP_ROW,
])}
`;

/** Said by an edge without tokens at start-up and in --check-config. */
const OPEN_NOTICE = 'OPEN: no agent tokens, any agent that reaches this edge may register a tunnel';

/**
 * What the edge offers for TCP and UDP tunnels, one line per kind, as said at start-up and (with the
 * kinds that are off) in --check-config: `tcp-ports` / `udp-ports` are easy to leave empty or to
 * mistype as a range too small, and each port is a public listener.
 */
function portTunnelLines(values: SettingValues, open: boolean, withOff: boolean): string[] {
  const lines: string[] = [];
  for (const kind of ['tcp', 'udp'] as const) {
    const ranges = values[`${kind}-ports`] as string;
    const count = [...portsOf(parsePortRanges(ranges))].length;
    if (count) lines.push(`${kind.toUpperCase()} tunnels on ports ${ranges} (${count} port${count === 1 ? '' : 's'})${open ? ' (OPEN: any agent may take one)' : ''}`);
    else if (withOff) lines.push(`${kind.toUpperCase()} tunnels off (${kind}-ports empty)`);
  }
  return lines;
}

interface Parsed {
  values: SettingValues;
  positionals: string[];
  help: boolean;
  checkConfig: boolean;
}

/** argv → settings: strict flags, then flag > JETTY_* > config file > default. */
function parseCommand(argv: string[], specs: readonly SettingSpec[], positionals: boolean, extra: string[] = []): Parsed {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  const options = argsConfig(specs, extra);
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
  } catch (err) {
    throw argsError(err, options);
  }
  const help = parsed.values.help === true;
  const configPath = (parsed.values.config as string | undefined) ?? process.env.JETTY_CONFIG;
  const file = configPath && !help ? loadConfigFile(configPath) : undefined;
  return {
    values: help ? {} : resolveSettings(specs, parsed.values, process.env, file),
    positionals: parsed.positionals,
    help,
    checkConfig: parsed.values['check-config'] === true,
  };
}

/**
 * `3000`, `host:3000`, `http://host:3000/base`, `https://…` or `h2c://host:port` → origin URL. A path on
 * the URL is a base path every target goes under; a query, fragment or credentials are refused.
 */
export function parseOrigin(target: string): URL {
  let text = target;
  if (/^\d+$/.test(target)) text = `http://localhost:${target}`;
  else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) text = `http://${target}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`invalid target "${target}" (want a port, host:port or http://, https://, h2c:// URL)`);
  }
  if (!ORIGIN_SCHEMES.includes(url.protocol)) throw new UsageError(`unsupported target scheme "${url.protocol}" (want http://, https:// or h2c://)`);
  if (url.hostname === '') throw new UsageError(`target "${target}" names no host`);
  const port = Number(url.port || ORIGIN_DEFAULT_PORTS[url.protocol]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`invalid target port in "${target}"`);
  if (url.search || url.hash || url.username || url.password) throw new UsageError(`target "${target}" may carry a base path, but no query, fragment or credentials`);
  if (url.protocol === 'h2c:' && url.pathname !== '' && url.pathname !== '/') throw new UsageError(`h2c:// target "${target}" takes no path (gRPC paths are absolute)`);
  return url;
}

/** The process logger, flushed before exit so the last lines (drain, errors) are not lost. */
let processLogger: Logger | undefined;

function exit(code: number): void {
  const logger = processLogger;
  if (!logger) process.exit(code);
  // pino writes asynchronously: let the last lines out first, bounded by a short timer.
  const done = (): void => process.exit(code);
  setTimeout(done, 500).unref();
  whenWritten(logger, done);
}

/**
 * The root of the ownership tree (STYLE.md): a second signal or a fatal error aborts it, and the edge
 * or agent started below closes at once.
 */
const root = new AbortController();

/** After the root aborts, the longest the edge or agent may take to close before the process exits anyway. */
const ABORT_EXIT_MS = 1_000;

/**
 * Closes `part` when the root aborts, bounded by ABORT_EXIT_MS, then exits: 0 for a second signal (the
 * operator asked twice), 1 for a fatal error.
 */
function closeOnAbort(part: { close(): Promise<unknown> }): void {
  root.signal.addEventListener(
    'abort',
    () => {
      const code = root.signal.reason instanceof AbortError ? EXIT_OK : EXIT_RUNTIME;
      setTimeout(() => process.exit(code), ABORT_EXIT_MS).unref();
      void part.close().then(() => exit(code));
    },
    { once: true },
  );
}

/**
 * First signal: graceful `drain`, then exit 0. A second signal aborts the root: close at once.
 * Installed before the stable line (`Jetty edge on …`, `Forwarding …`) is printed: a script or test
 * that signals as soon as it reads the line found the default action (killed by SIGINT) about one
 * time in three on a loaded machine, when the process was descheduled between the write and this.
 */
function onSignals(drain: (options: AbortOptions) => Promise<unknown>): void {
  let draining = false;
  const handler = (): void => {
    if (draining) return void root.abort(new AbortError('second signal'));
    draining = true;
    void drain({ signal: root.signal }).then(() => exit(EXIT_OK));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/**
 * SIGHUP re-reads the certificate and key files (a renewed certificate) and puts them on the public
 * listener without dropping a connection. Files that cannot be read or used keep the old ones: one
 * error line, and the edge goes on.
 */
function reloadTlsOnHangup(edge: Edge, certPath: string, keyPath: string, logger: Logger): void {
  process.on('SIGHUP', () => {
    try {
      edge.reloadTls({ cert: readSettingFile('tls-cert', certPath), key: readSettingFile('tls-key', keyPath) });
      logger.info({ cert: certPath }, 'tls certificate reloaded');
    } catch (err) {
      logger.error({ err: toError(err).message }, 'tls certificate not reloaded: keeping the previous one');
    }
  });
}

async function runEdge(argv: string[]): Promise<number> {
  const { EDGE_SETTINGS, edgeInitFrom, effectiveEdgeSettings, Edge } = await edgeModules();
  const parsed = parseCommand(argv, EDGE_SETTINGS, false, ['check-config']);
  if (parsed.help) {
    process.stdout.write(edgeHelp(EDGE_SETTINGS));
    return EXIT_OK;
  }
  const values = effectiveEdgeSettings(parsed.values);
  const open = (values.tokens as unknown[]).length === 0;
  if (parsed.checkConfig) {
    if (open) process.stdout.write(`# ${OPEN_NOTICE}\n`);
    for (const line of portTunnelLines(values, open, true)) process.stdout.write(`# ${line}\n`);
    process.stdout.write(printableSettings(EDGE_SETTINGS, values));
    return EXIT_OK;
  }
  const logger = createLogger(values['log-level'] as string, 'edge', values['log-format'] as LogFormat);
  processLogger = logger;
  startGcBudget();
  if ((values.transports as string[]).includes('grpc')) routeGrpcLogs(logger);
  const edge = await Edge.start({ ...edgeInitFrom(values), logger }, { signal: root.signal });
  closeOnAbort(edge);
  const t = values.transports as string[];
  const offered = [t.includes('grpc') ? `grpc on port ${edge.grpcPort}` : '', t.includes('websocket') ? 'websocket' : ''].filter(Boolean).join(', ');
  onSignals((options) => edge.drain(options));
  process.stdout.write(`Jetty edge on ${edge.scheme}://${edge.domain}:${edge.publicPort} (agents: ${offered})${edge.open ? ` ${OPEN_NOTICE}` : ''}\n`);
  for (const line of portTunnelLines(values, edge.open, false)) process.stdout.write(`${line}\n`);
  if (edge.cluster) process.stdout.write(`Shared registry ${edge.registry} as edge ${edge.edgeId}\n`);
  if (edge.peerUrl) process.stdout.write(`Peer listener on ${edge.peerUrl} (edge-to-edge forwarding)\n`);
  if (edge.adminPort) process.stdout.write(`Admin on http://${parseHostPort(values['admin-listen'] as string, '127.0.0.1').host}:${edge.adminPort} (/livez /readyz /metrics)\n`);
  if (edge.scheme === 'https') reloadTlsOnHangup(edge, values['tls-cert'] as string, values['tls-key'] as string, logger);
  await new Promise(() => undefined);
  return EXIT_OK;
}

/** `5432` or `host:5432` → tcp://host:5432 (or udp://; localhost by default). */
export function parsePortTarget(target: string, scheme: 'tcp' | 'udp'): URL {
  const { host, port } = (() => {
    try {
      return parseHostPort(target, 'localhost');
    } catch {
      throw new UsageError(`invalid target "${target}" (want a port or host:port)`);
    }
  })();
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`invalid target port in "${target}"`);
  return new URL(`${scheme}://${formatHostPort(host, port)}`);
}

async function runTcp(argv: string[]): Promise<number> {
  const modules = await agentModules();
  const { values, positionals, help } = parseCommand(argv, modules.TCP_SETTINGS, true);
  if (help) {
    process.stdout.write(tcpHelp(modules.TCP_SETTINGS));
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError('jetty tcp takes one target: a port or host:port');
  const origin = parsePortTarget(positionals[0], 'tcp');
  const tunnel = { remotePort: (values['remote-port'] as number) || undefined, proxyProtocol: (values['proxy-protocol'] as ProxyProtocolVersion) || undefined };
  return runAgent(modules, values, origin, `${origin.hostname}:${origin.port}`, tunnel);
}

async function runUdp(argv: string[]): Promise<number> {
  const modules = await agentModules();
  const { values, positionals, help } = parseCommand(argv, modules.UDP_SETTINGS, true);
  if (help) {
    process.stdout.write(udpHelp(modules.UDP_SETTINGS));
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError('jetty udp takes one target: a port or host:port');
  const origin = parsePortTarget(positionals[0], 'udp');
  return runAgent(modules, values, origin, `${origin.hostname}:${origin.port}`, { remotePort: (values['remote-port'] as number) || undefined });
}

async function runHttp(argv: string[]): Promise<number> {
  const modules = await agentModules();
  const { values, positionals, help } = parseCommand(argv, modules.AGENT_SETTINGS, true);
  if (help) {
    process.stdout.write(httpHelp(modules.AGENT_SETTINGS));
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError('jetty http takes one target: a port, host:port or URL');
  const origin = parseOrigin(positionals[0]);
  if (values['origin-insecure'] && origin.protocol === 'https:') {
    process.stderr.write(`jetty: warning: --origin-insecure: the certificate of ${origin.host} is not verified (anyone on the path to it can read and change the traffic)\n`);
  }
  return runAgent(modules, values, origin, `${origin.protocol}//${origin.host}${origin.pathname.replace(/\/+$/, '')}`, {});
}

/** Runs an agent (any kind of tunnel) until it stops; `shown` is the origin as the Forwarding line names it. */
async function runAgent({ Agent }: AgentModules, values: SettingValues, origin: URL, shown: string, tunnel: Pick<AgentInit, 'remotePort' | 'proxyProtocol'>): Promise<number> {
  const edgeUrl = new URL(values.edge as string);
  // The live status view owns the terminal: log lines bound for it would tear the view apart.
  const viewLive = process.stdout.isTTY === true;
  const logFile = (values['log-file'] as string) || (viewLive && process.stderr.isTTY === true ? join(tmpdir(), `jetty-agent-${process.pid}.log`) : '');
  const logger = createLogger(values['log-level'] as string, 'agent', values['log-format'] as LogFormat, logFile || undefined);
  processLogger = logger;
  startGcBudget();
  // An agent on WebSocket never loads grpc-js, so has none of its lines to route.
  if (values.transport !== 'websocket') routeGrpcLogs(logger);
  const agent = await Agent.start({
    edge: edgeUrl,
    origin,
    name: (values.name as string) || undefined,
    transport: values.transport as AgentTransport,
    wsCodec: values['ws-codec'] as WsCodecChoice,
    wsWindowBytes: values['ws-window'] as number,
    wsMask: values['ws-mask'] as WsMaskChoice,
    token: (values.token as string) || undefined,
    edgeCa: values['edge-ca'] ? readSettingFile('edge-ca', values['edge-ca'] as string) : undefined,
    insecure: values.insecure as boolean,
    originInsecure: values['origin-insecure'] as boolean,
    hostHeader: values['host-header'] as string,
    logger,
    ...tunnel,
  });
  closeOnAbort(agent);
  const adminListen = values['admin-listen'] as string;
  if (adminListen) {
    const readiness = () => ({
      ready: agent.connected,
      body: { status: agent.connected ? 'connected' : 'disconnected', transport: agent.transport, url: agent.url, udpDropped: agent.droppedDatagrams() },
    });
    (await listenFor('admin-listen', adminListen, AdminServer.start({ listen: adminListen, readiness }, { signal: root.signal }))).unref();
  }
  let leaving = false;
  let view: StatusView | undefined;
  onSignals(() => {
    leaving = true;
    view?.draining(values['grace-period'] as number);
    return agent.leave(values['grace-period'] as number);
  });
  process.stdout.write(`Tunnel ${agent.name} connected to ${edgeUrl.origin} over ${printable(agent.transport)}\n`);
  process.stdout.write(`Forwarding ${printable(agent.url)} -> ${shown}\n`);
  if (viewLive && logFile) process.stdout.write(`Logs in ${printable(logFile)}\n`);
  view = new StatusView({ agent, origin: shown, out: process.stdout, color: !process.env.NO_COLOR, logFile: logFile || undefined });
  const reason = await agent.closed;
  view?.abort();
  if (leaving) return EXIT_OK;
  process.stderr.write(`jetty: ${printable(reason.message)}\n`);
  return EXIT_RUNTIME;
}

function runToken(argv: string[]): number {
  const [sub, ...rest] = argv;
  let parsed;
  const options = { name: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } } as const;
  try {
    parsed = parseArgs({ args: rest, options, strict: true });
  } catch (err) {
    throw argsError(err, options);
  }
  if (parsed.values.help || sub === '--help' || sub === '-h') {
    process.stdout.write(TOKEN_HELP);
    return EXIT_OK;
  }
  if (sub !== 'create') throw new UsageError(`unknown token command "${sub ?? ''}" (want create)`);
  const names = parsed.values.name ?? ['*'];
  // Refused here, not by the edge at start-up: an entry printed now would be pasted into its config.
  for (const n of names) if (!isValidNamePattern(n)) throw new UsageError(`invalid --name "${printable(n)}": want ${NAME_PATTERN_RULE}`);
  const { token, hash } = createToken();
  // The hint keeps the token off command lines, where `ps` and shell history show it.
  process.stdout.write(`Token (give it to the agent as JETTY_TOKEN, or "token:" in its --config file):\n  ${token}\n\n`);
  process.stdout.write(`Add to the edge's config file:\ntokens:\n  - hash: ${hash}\n    names: [${names.map((n) => JSON.stringify(n)).join(', ')}]\n`);
  return EXIT_OK;
}

async function runDemoOrigin(argv: string[]): Promise<number> {
  const options = { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true });
  } catch (err) {
    throw argsError(err, options);
  }
  if (parsed.values.help) {
    process.stdout.write(DEMO_ORIGIN_HELP);
    return EXIT_OK;
  }
  const portText = parsed.values.port ?? String(DEMO_ORIGIN_DEFAULT_PORT);
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) throw new UsageError(`invalid --port "${printable(portText)}": want a whole number from 0 to 65535`);
  const host = parsed.values.host ?? DEMO_ORIGIN_DEFAULT_HOST;
  const origin = await listenFor('port', formatHostPort(host, Number(portText)), DemoOrigin.start({ host, port: Number(portText) }, { signal: root.signal }), 'N');
  onSignals(() => origin.close());
  process.stdout.write(`Demo origin on ${origin.url} (shows each request it gets; Ctrl+C to stop)\n`);
  await new Promise(() => undefined);
  return EXIT_OK;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'edge':
      return runEdge(rest);
    case 'http':
      return runHttp(rest);
    case 'tcp':
      return runTcp(rest);
    case 'udp':
      return runUdp(rest);
    case 'token':
      return runToken(rest);
    case 'demo-origin':
      return runDemoOrigin(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${VERSION}\n`);
      return EXIT_OK;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(MAIN_HELP);
      return command === undefined ? EXIT_USAGE : EXIT_OK;
    default:
      throw new UsageError(`unknown command "${printable(command)}"${suggestion(command, COMMANDS) || ` (want ${COMMANDS.join(', ')})`}`);
  }
}

// A reader that went away (`| head -3`) makes writes to stdout fail with EPIPE: the stable lines
// are then simply not seen; the process goes on (and still stops on a signal).
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    const e = toError(err);
    root.abort(e);
    process.stderr.write(`jetty: ${printable(e.message)}\n`);
    exit(e instanceof UsageError ? EXIT_USAGE : EXIT_RUNTIME);
  },
);
