import { TUNNEL_KIND_NAMES, type EdgeMessage, type TunnelKind } from '../codec/tunnel-codec.js';
import { ProtocolError } from '../errors.js';
import { MIN_WS_WINDOW_BYTES } from '../streams/ws-mux.js';
import { isValidTunnelName } from '../tunnel-name.js';
import type { Discovery } from './discovery.js';

/**
 * The agent trusts nothing the edge sends: discovery and Registered are checked field by field before
 * anything uses them. Above all, nothing the edge says can send the agent, or its token, to another
 * host: gRPC dials the edge URL's own host, and the WebSocket path must resolve on the edge's origin.
 */

const DNS_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
/** Session ids and resume secrets: URL-safe text (they travel as gRPC metadata). */
const OPAQUE_ID = /^[A-Za-z0-9._~-]{1,128}$/;
/** Largest window an agent accepts from the edge's Registered, bytes. */
const MAX_WINDOW_BYTES = 1 << 30;
/** Largest ping interval an agent accepts, ms (the edge's own setting allows up to an hour). */
const MAX_PING_INTERVAL_MS = 3_600_000;

const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a discovery answer from the edge at `edge`; throws ProtocolError naming the bad field. */
export function checkDiscovery(raw: unknown, edge: URL): Discovery {
  const bad = (what: string): ProtocolError => new ProtocolError(`the edge at ${edge.origin} sent bad discovery: ${what}`);
  if (!isObject(raw) || raw.version !== 1) throw bad('not version 1');
  if (typeof raw.domain !== 'string' || !DNS_NAME.test(raw.domain)) throw bad('domain is not a DNS name');
  if (!isPort(raw.publicPort)) throw bad('publicPort is not a port');
  if (!isObject(raw.transports)) throw bad('no transports');
  const { grpc, websocket } = raw.transports;
  const transports: Discovery['transports'] = {};
  if (grpc !== undefined) {
    if (!isObject(grpc) || !isPort(grpc.port)) throw bad('grpc.port is not a port');
    transports.grpc = { port: grpc.port };
  }
  if (websocket !== undefined) {
    const path = isObject(websocket) ? websocket.path : undefined;
    // An absolute URL, `//host/…` or `/\host/…` would resolve elsewhere and carry the token there.
    if (typeof path !== 'string' || !/^\/[\x21-\x7e]*$/.test(path) || path.startsWith('//') || new URL(path, edge).origin !== edge.origin) {
      throw bad('websocket.path is not a path on the edge itself');
    }
    transports.websocket = { path };
  }
  return { version: 1, domain: raw.domain, publicPort: raw.publicPort, transports };
}

/** What the agent asked for and learnt from discovery. */
export interface RegisteredExpectation {
  /** The name asked for; '' asked the edge to pick one, which must then be a valid tunnel name. */
  name: string;
  /** The edge's domain (discovery); when known, the tunnel URL must be NAME.DOMAIN. */
  domain?: string;
  /** What the tunnel serves; default HTTP. A TCP/UDP tunnel's URL is tcp://DOMAIN:PORT with PORT = Registered.port. */
  kind?: TunnelKind;
  /** The port asked for, which the edge must have given. */
  remotePort?: number;
}

/** Checks the URL and port of a TCP/UDP tunnel's Registered; throws ProtocolError naming the bad field. */
function checkPortRegistered(r: NonNullable<EdgeMessage['registered']>, expected: RegisteredExpectation, bad: (what: string) => ProtocolError): void {
  const scheme = TUNNEL_KIND_NAMES[expected.kind!];
  // An edge older than TCP/UDP tunnels ignores the Hello's kind and registers an HTTP tunnel.
  if (!r.port) throw new ProtocolError(`the edge does not serve ${scheme} tunnels (it registered an HTTP tunnel: it is older than this agent)`);
  if (!isPort(r.port)) throw bad('port is not a port');
  if (expected.remotePort && r.port !== expected.remotePort) throw bad('another port than the one asked for');
  const m = /^([a-z]+):\/\/([a-z0-9.-]+):(\d{1,5})$/.exec(r.url);
  if (!m || m[1] !== scheme || Number(m[3]) !== r.port || (expected.domain !== undefined && m[2] !== expected.domain)) {
    throw bad(`url is not ${scheme}://${expected.domain ?? 'DOMAIN'}:${r.port}`);
  }
}

/** Checks the edge's Registered answer; throws ProtocolError naming the bad field. */
export function checkRegistered(r: NonNullable<EdgeMessage['registered']>, expected: RegisteredExpectation): void {
  const bad = (what: string): ProtocolError => new ProtocolError(`the edge sent a bad Registered: ${what}`);
  // An HTTP agent without --name takes the name the edge picked inside its token's scope.
  const picked = expected.name === '' && !expected.kind;
  if (picked ? !isValidTunnelName(r.name) : r.name !== expected.name) throw bad('another tunnel name than the one asked for');
  expected = { ...expected, name: r.name };
  if (expected.kind) checkPortRegistered(r, expected, bad);
  else checkHttpUrl(r, expected, bad);
  if (!OPAQUE_ID.test(r.sessionId)) throw bad('sessionId');
  if (r.resumeSecret && !OPAQUE_ID.test(r.resumeSecret)) throw bad('resumeSecret');
  if (r.window && (r.window < MIN_WS_WINDOW_BYTES || r.window > MAX_WINDOW_BYTES)) throw bad(`window outside ${MIN_WS_WINDOW_BYTES}..${MAX_WINDOW_BYTES}`);
  if (r.pingIntervalMs && r.pingIntervalMs > MAX_PING_INTERVAL_MS) throw bad('pingIntervalMs above an hour');
}

/** An HTTP tunnel's URL: http(s)://NAME.DOMAIN[:PORT]/ and nothing else. */
function checkHttpUrl(r: NonNullable<EdgeMessage['registered']>, expected: RegisteredExpectation, bad: (what: string) => ProtocolError): void {
  let url: URL;
  try {
    url = new URL(r.url);
  } catch {
    throw bad('url is not a URL');
  }
  const host = expected.domain ? `${expected.name}.${expected.domain}` : undefined;
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.pathname !== '/' ||
    url.search !== '' ||
    url.hash !== '' ||
    (host ? url.hostname !== host : !url.hostname.startsWith(`${expected.name}.`)) ||
    !/^https?:\/\/[a-z0-9.-]+(:\d+)?\/?$/.test(r.url)
  ) {
    throw bad(`url is not ${url.protocol === 'https:' ? 'https' : 'http'}://${host ?? `${expected.name}.DOMAIN`}[:PORT]`);
  }
}
