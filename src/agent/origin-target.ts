import type { Header } from '../codec/http-chunk.js';

/** Schemes `jetty http` reaches an origin with: HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 with prior knowledge. */
export const ORIGIN_SCHEMES: readonly string[] = ['http:', 'https:', 'h2c:'];

/** Default port of each origin scheme when the URL names none. */
export const ORIGIN_DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443, 'h2c:': 80 };

/** `--host-header` keywords; any other value is a literal Host. */
export const HOST_HEADER_KEYWORDS = ['preserve', 'rewrite'] as const;

/** A literal `--host-header` value: a DNS-style name or an IPv4 address, or a bracketed IPv6 literal, with an optional port. */
const HOST_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** Longest literal Host (RFC 1035 name, a port). */
const MAX_HOST_VALUE_CHARS = 260;

/** Validates a `--host-header` setting: preserve, rewrite, or a `host[:port]` to send as is. Throws a message. */
export function parseHostHeader(raw: unknown): string {
  const v = String(raw);
  if ((HOST_HEADER_KEYWORDS as readonly string[]).includes(v)) return v;
  const port = /:(\d+)$/.exec(v)?.[1];
  if (v.length > MAX_HOST_VALUE_CHARS || !HOST_VALUE.test(v) || (port !== undefined && Number(port) > 65535)) {
    throw new Error('want preserve, rewrite, or a host[:port] such as api.internal:8443');
  }
  return v;
}

/**
 * Where an exchange goes on the origin: the target under the origin URL's base path, and the Host (or
 * `:authority`) the origin sees. `preserve` keeps the public Host (ngrok's default: virtual hosts and
 * absolute redirects keep working), `rewrite` sends the origin's own `host:port` (dev servers that check
 * Host), anything else is sent literally.
 */
export class OriginTarget {
  private readonly base: string;
  private readonly host: string | undefined;
  /** The origin's own `host:port`, for an exchange that carries no Host at all. */
  private readonly fallback: string;

  constructor(origin: URL, hostHeader = 'preserve') {
    // `/docs/` and `/docs` both put `/x` at `/docs/x`.
    this.base = origin.pathname.replace(/\/+$/, '');
    const port = origin.port || String(ORIGIN_DEFAULT_PORTS[origin.protocol] ?? 80);
    this.fallback = `${origin.hostname}:${port}`;
    this.host = hostHeader === 'preserve' ? undefined : hostHeader === 'rewrite' ? this.fallback : hostHeader;
  }

  /** The origin-form target under the base path (`*` stays itself). */
  path(target: string | undefined): string {
    const t = target || '/';
    if (this.base === '' || !t.startsWith('/')) return t;
    return `${this.base}${t}`;
  }

  /** The Host the origin sees (`:authority` on HTTP/2), given the exchange's fields. */
  authority(headers: readonly Header[]): string {
    return this.host ?? headers.find((h) => h.name.toLowerCase() === 'host')?.value ?? this.fallback;
  }

  /** The exchange's fields with Host set as the setting says (one Host, where the first stood). */
  fields(headers: readonly Header[]): Header[] {
    if (this.host === undefined) return [...headers];
    const out: Header[] = [];
    let placed = false;
    for (const h of headers) {
      if (h.name.toLowerCase() !== 'host') out.push(h);
      else if (!placed) {
        placed = true;
        out.push({ name: h.name, value: this.host });
      }
    }
    if (!placed) out.unshift({ name: 'Host', value: this.host });
    return out;
  }
}
