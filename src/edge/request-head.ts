import type { IncomingMessage } from 'node:http';
import { ChunkKind, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields } from '../codec/http-fields.js';
import { BadRequestError } from '../errors.js';

/** Fields the edge sets itself; incoming ones are dropped (kept and extended only from trusted proxies). */
const EDGE_SET_FIELDS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id']);

export interface RequestHeadOptions {
  /** Sent to the agent and the origin as X-Request-Id. */
  requestId: string;
  /** The peer is a trusted proxy: its X-Forwarded-* values are kept (X-Forwarded-For extended). */
  trusted: boolean;
}

/**
 * The routing key of a Host / :authority value: lower-cased, port and one trailing dot removed.
 */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.lastIndexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** The tunnel a host names (`NAME.DOMAIN`), or undefined when the host is the edge's own. */
export function tunnelName(host: string, domain: string): string | undefined {
  const h = normaliseHost(host);
  const suffix = `.${domain}`;
  if (!h.endsWith(suffix)) return undefined;
  const name = h.slice(0, -suffix.length);
  return name && !name.includes('.') ? name : undefined;
}

/** The single Host value of a request; rejects zero or several Host lines (smuggling-shaped). */
export function singleHost(req: IncomingMessage): string {
  let host: string | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') {
      if (host !== undefined) throw new BadRequestError('several Host header lines');
      host = raw[i + 1];
    }
  }
  if (host === undefined || host === '') throw new BadRequestError('missing Host header');
  return host;
}

/**
 * The request target in origin form. An absolute-form target must name the same authority as Host
 * (otherwise routing and the origin would disagree on the destination); it is then reduced.
 */
export function originFormTarget(url: string, host: string): string {
  if (url.startsWith('/')) return url;
  if (url === '*') return url;
  if (/^https?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new BadRequestError('malformed absolute-form target', { cause: err });
    }
    if (normaliseHost(parsed.host) !== normaliseHost(host)) {
      throw new BadRequestError('absolute-form target names another host than Host');
    }
    return `${parsed.pathname}${parsed.search}`;
  }
  throw new BadRequestError('unsupported request target form');
}

/**
 * The request HEADERS chunk for a public request: hop-by-hop fields stripped, forwarding fields and
 * X-Request-Id set by the edge.
 */
export function requestHead(req: IncomingMessage, host: string, exchangeId: string, options: RequestHeadOptions): HTTPChunk {
  const target = originFormTarget(req.url ?? '/', host);
  const headers = endToEndFields(req.rawHeaders, EDGE_SET_FIELDS);
  const peer = req.socket.remoteAddress ?? '';
  const prior = (name: string): string | undefined => {
    const v = req.headers[name];
    return options.trusted && typeof v === 'string' && v !== '' ? v : undefined;
  };
  const forwardedFor = prior('x-forwarded-for');
  headers.push(
    { name: 'X-Forwarded-For', value: forwardedFor ? `${forwardedFor}, ${peer}` : peer },
    { name: 'X-Forwarded-Proto', value: prior('x-forwarded-proto') ?? 'http' },
    { name: 'X-Forwarded-Host', value: prior('x-forwarded-host') ?? host },
    { name: 'X-Request-Id', value: options.requestId },
  );
  return { kind: ChunkKind.HEADERS, exchangeId, method: req.method ?? 'GET', target, headers };
}
