import type { IncomingMessage } from 'node:http';
import { ChunkKind, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields, trailerFields, upgradeFields } from '../codec/http-fields.js';
import { BadRequestError } from '../errors.js';

/** Fields the edge sets itself; incoming ones are dropped (kept and extended only from trusted proxies). */
const EDGE_SET_FIELDS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id']);
/**
 * Client-address fields other proxies set (X-Real-IP, X-Forwarded-Port/-Ssl/-Prefix and every other
 * X-Forwarded-*): an origin may trust them, so only a trusted proxy may send them.
 */
const CLIENT_ADDRESS_FIELDS: ReadonlySet<string> = new Set(['x-real-ip', 'true-client-ip', 'x-client-ip']);
const FORWARDED_PREFIX = 'x-forwarded-';

/** Longest host name (RFC 1035: 253 characters, one trailing dot more). */
const MAX_HOST_CHARS = 254;
/** reg-name restricted to DNS labels (letters, digits, '-', '_'), dot-separated, one trailing dot allowed. */
const REG_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;
/** An IPv6 literal (hex, ':' and dotted IPv4 tail); zone ids and IPvFuture are refused. */
const IP_LITERAL = /^\[[0-9a-f:.]+\]$/;
const PORT = /^\d*$/;

export interface RequestHeadOptions {
  /** Sent to the agent and the origin as X-Request-Id. */
  requestId: string;
  /** The peer is a trusted proxy: its X-Forwarded-* values are kept (X-Forwarded-For extended). */
  trusted: boolean;
  /** The protocol an upgrade request asks for (upgradeProtocol): `Connection: upgrade` and `Upgrade` go on. */
  upgrade?: string;
}

/** A Host / :authority value, checked and normalised. */
export interface Authority {
  /** Lower-case name (one trailing dot removed) or bracketed IPv6 literal: the routing key. */
  host: string;
  /** Decimal port without leading zeros; '' when absent or empty. */
  port: string;
}

/**
 * Splits and checks a Host / :authority value (RFC 9110 §7.2, uri-host [":" port]): the port is empty
 * or digits up to 65535, the host a DNS-style name, an IPv4 address or an IPv6 literal. Anything else
 * (userinfo, a path, a second colon) is a BadRequestError, never a routing guess.
 */
export function parseAuthority(value: string): Authority {
  const v = value.toLowerCase();
  let host: string;
  let port = '';
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    host = end === -1 ? v : v.slice(0, end + 1);
    const rest = v.slice(host.length);
    if (!IP_LITERAL.test(host) || (rest !== '' && !rest.startsWith(':'))) throw new BadRequestError('malformed Host');
    port = rest.slice(1);
  } else {
    const colon = v.indexOf(':');
    host = colon === -1 ? v : v.slice(0, colon);
    port = colon === -1 ? '' : v.slice(colon + 1);
    if (host.length > MAX_HOST_CHARS || !REG_NAME.test(host)) throw new BadRequestError('malformed Host');
    if (host.endsWith('.')) host = host.slice(0, -1);
  }
  if (!PORT.test(port) || Number(port) > 65535) throw new BadRequestError('Host port must be digits');
  return { host, port: port === '' ? '' : String(Number(port)) };
}

/** The normalised Host value the origin receives: `host[:port]`. */
export function formatAuthority(a: Authority): string {
  return a.port === '' ? a.host : `${a.host}:${a.port}`;
}

/** The routing key of a Host / :authority value (parseAuthority's host). Throws BadRequestError. */
export function normaliseHost(host: string): string {
  return parseAuthority(host).host;
}

/**
 * The tunnel a Host value names (`NAME.DOMAIN`), or undefined when the host is the edge's own.
 * Throws BadRequestError for a malformed Host.
 */
export function tunnelName(host: string, domain: string): string | undefined {
  const h = normaliseHost(host);
  const suffix = `.${domain}`;
  if (!h.endsWith(suffix)) return undefined;
  const name = h.slice(0, -suffix.length);
  return name && !name.includes('.') ? name : undefined;
}

/** The Host value of a request, undefined when it has none; rejects several Host lines (smuggling-shaped). */
function hostLine(req: IncomingMessage): string | undefined {
  let host: string | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') {
      if (host !== undefined) throw new BadRequestError('several Host header lines');
      host = raw[i + 1];
    }
  }
  return host;
}

/** The single Host value of a request; rejects zero or several Host lines (smuggling-shaped). */
export function singleHost(req: IncomingMessage): string {
  const host = hostLine(req);
  if (host === undefined || host === '') throw new BadRequestError('missing Host header');
  return host;
}

/**
 * The authority of an HTTP/2 request: `:authority`, else Host (RFC 9113 §8.3.1). When both are there
 * they must name the same host and port: Node accepts a pair that differs (DESIGN.md §5), and routing by
 * one while the origin reads the other is the smuggling shape Host checks exist for.
 */
export function h2Authority(req: IncomingMessage): Authority {
  const pseudo = req.headers[':authority'];
  const host = hostLine(req);
  const authority = typeof pseudo === 'string' && pseudo !== '' ? pseudo : host;
  if (authority === undefined || authority === '') throw new BadRequestError('missing :authority and Host');
  const parsed = parseAuthority(authority);
  if (host !== undefined && authority !== host && formatAuthority(parseAuthority(host)) !== formatAuthority(parsed)) {
    throw new BadRequestError(':authority and Host name different hosts');
  }
  return parsed;
}

/**
 * The request target in origin form. An absolute-form target must name the same host as Host
 * (otherwise routing and the origin would disagree on the destination); it is then reduced.
 */
export function originFormTarget(url: string, authority: Authority): string {
  if (url.startsWith('/')) return url;
  if (url === '*') return url;
  if (/^https?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new BadRequestError('malformed absolute-form target', { cause: err });
    }
    if (parsed.username || parsed.password || normaliseHost(parsed.host) !== authority.host) {
      throw new BadRequestError('absolute-form target names another host than Host');
    }
    return `${parsed.pathname}${parsed.search}`;
  }
  throw new BadRequestError('unsupported request target form');
}

/** Forwarding fields only a trusted proxy may send. */
function clientAddressField(lower: string): boolean {
  return lower.startsWith(FORWARDED_PREFIX) || CLIENT_ADDRESS_FIELDS.has(lower);
}

/**
 * A public request's trailers as they go on: filtered like its head (trailerFields, and the fields the
 * edge sets), and never forwarding fields, which belong in the head if anywhere.
 */
export function requestTrailers(fields: readonly Header[]): Header[] {
  return trailerFields(fields, EDGE_SET_FIELDS).filter((h) => !clientAddressField(h.name.toLowerCase()));
}

/**
 * The request HEADERS chunk for a public request: hop-by-hop fields stripped (but for an upgrade's two),
 * Host normalised,
 * client-address fields dropped unless a trusted proxy sent them, forwarding fields and X-Request-Id
 * set by the edge.
 */
export function requestHead(req: IncomingMessage, authority: Authority, exchangeId: string, options: RequestHeadOptions): HTTPChunk {
  const target = originFormTarget(req.url ?? '/', authority);
  const host = formatAuthority(authority);
  // Host first, always: even a Connection field naming it cannot take it away from the origin.
  const headers: Header[] = [{ name: 'Host', value: host }];
  const h2 = req.httpVersionMajor === 2;
  const cookies: string[] = [];
  for (const h of endToEndFields(req.rawHeaders, EDGE_SET_FIELDS)) {
    const lower = h.name.toLowerCase();
    // HTTP/2 pseudo-headers became the target and Host above; its split Cookie fields become one line
    // for an HTTP/1.1 origin (RFC 9113 §8.2.3).
    if (h2 && lower.startsWith(':')) continue;
    if (h2 && lower === 'cookie') cookies.push(h.value);
    else if (lower !== 'host' && (options.trusted || !clientAddressField(lower))) headers.push(h);
  }
  if (cookies.length > 0) headers.push({ name: 'cookie', value: cookies.join('; ') });
  if (options.upgrade !== undefined) headers.push(...upgradeFields(options.upgrade));
  const peer = req.socket.remoteAddress ?? '';
  const prior = (name: string): string | undefined => {
    const v = req.headers[name];
    return options.trusted && typeof v === 'string' && v !== '' ? v : undefined;
  };
  const forwardedFor = prior('x-forwarded-for');
  headers.push(
    { name: 'X-Forwarded-For', value: forwardedFor ? `${forwardedFor}, ${peer}` : peer },
    { name: 'X-Forwarded-Proto', value: prior('x-forwarded-proto') ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http') },
    { name: 'X-Forwarded-Host', value: prior('x-forwarded-host') ?? host },
    { name: 'X-Request-Id', value: options.requestId },
  );
  return { kind: ChunkKind.HEADERS, exchangeId, method: req.method ?? 'GET', target, headers };
}
