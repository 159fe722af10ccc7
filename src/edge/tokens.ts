import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { formatPortRanges, inPortRanges, parsePortRanges, type PortRange } from './port-ranges.js';

/**
 * One configured agent token: its SHA-256, the tunnel names it may claim (exact or `prefix-*`) and the
 * TCP/UDP ports it may claim (`ports: ["20000-20010"]`; absent = any port of the edge's ranges).
 */
export interface TokenEntry {
  /** `sha256:<64 hex>`; the token itself is never stored. */
  hash: string;
  /** HTTP tunnel names; empty = no HTTP tunnel (a token for ports only). */
  names: string[];
  /** TCP/UDP public ports; undefined = any port the edge serves. */
  ports?: PortRange[];
}

/** The registry key of a TCP or UDP tunnel: `tcp:20005`. Never a DNS label, so the router never serves it. */
const PORT_KEY = /^(?:tcp|udp):(\d{1,5})$/;

const HASH = /^sha256:[0-9a-f]{64}$/;
const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:-\*)?$|^\*$/;
/** The rule of a token's name pattern, in words, for messages. */
export const NAME_PATTERN_RULE = 'a tunnel name (1-63 lower-case letters, digits and inner hyphens), a prefix such as dev-*, or *';

/** Whether `pattern` is a name a token may list: exact, `prefix-*` or `*`. */
export function isValidNamePattern(pattern: string): boolean {
  return NAME_PATTERN.test(pattern);
}

/** Validates the `tokens` config value. */
export function parseTokenEntries(raw: unknown): TokenEntry[] {
  if (!Array.isArray(raw)) throw new Error('want a list of {hash, names} entries');
  return raw.map((entry, i) => {
    const e = entry as { hash?: unknown; names?: unknown; ports?: unknown };
    if (typeof entry !== 'object' || entry === null) throw new Error(`entry ${i} must be a mapping`);
    for (const k of Object.keys(e)) if (k !== 'hash' && k !== 'names' && k !== 'ports') throw new Error(`entry ${i}: unknown key "${k}"`);
    if (typeof e.hash !== 'string' || !HASH.test(e.hash)) throw new Error(`entry ${i}: hash must be sha256:<64 hex digits> (jetty token create prints one)`);
    let ports: PortRange[] | undefined;
    if (e.ports !== undefined) {
      if (!Array.isArray(e.ports) || e.ports.length === 0) throw new Error(`entry ${i}: ports must list at least one port or FROM-TO range`);
      try {
        ports = parsePortRanges(e.ports);
      } catch (err) {
        throw new Error(`entry ${i}: ${(err as Error).message}`);
      }
    }
    // A token for ports only may leave names out; otherwise names are what it is for.
    if (e.names === undefined && ports) return { hash: e.hash, names: [], ports };
    if (!Array.isArray(e.names) || e.names.length === 0) throw new Error(`entry ${i}: names must list at least one name or prefix-*`);
    for (const n of e.names) if (typeof n !== 'string' || !NAME_PATTERN.test(n)) throw new Error(`entry ${i}: bad name pattern ${JSON.stringify(n)} (want ${NAME_PATTERN_RULE})`);
    return ports ? { hash: e.hash, names: e.names as string[], ports } : { hash: e.hash, names: e.names as string[] };
  });
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/** A new random token and the hash to put in the edge's config. */
export function createToken(): { token: string; hash: string } {
  const token = `jt_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

/**
 * Checks agent tokens. With no entries the edge runs open (anyone may register any free name).
 * Comparison is constant-time over every entry, so timing tells nothing about which hash is close.
 */
export class TokenAuthority {
  private readonly entries: Array<TokenEntry & { digest: Buffer }>;

  constructor(entries: readonly TokenEntry[]) {
    this.entries = entries.map((e) => ({ ...e, digest: Buffer.from(e.hash.slice('sha256:'.length), 'hex') }));
  }

  get open(): boolean {
    return this.entries.length === 0;
  }

  /** The entry a presented token matches, or undefined. */
  authenticate(token: string | undefined): TokenEntry | undefined {
    const presented = Buffer.from(hashToken(token ?? '').slice('sha256:'.length), 'hex');
    let found: TokenEntry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.digest) && token) found = e;
    }
    return found;
  }

  /**
   * Whether `entry` may claim `name` (exact, `prefix-*`, or `*`), or for a TCP/UDP tunnel's key
   * (`tcp:PORT`) that port (its `ports`, any when it has none).
   */
  static mayClaim(entry: TokenEntry, name: string): boolean {
    const port = PORT_KEY.exec(name);
    if (port) return entry.ports === undefined || inPortRanges(Number(port[1]), entry.ports);
    return entry.names.some((p) => p === '*' || p === name || (p.endsWith('-*') && name.startsWith(p.slice(0, -1)) && name.length > p.length - 1));
  }
}

/** What `entry` allows of the kind of `name`, for a refusal: its names, or its ports for a TCP/UDP key. */
export function allowedOf(entry: TokenEntry, name: string): string {
  if (!PORT_KEY.test(name)) return entry.names.join(', ') || 'no names';
  return formatPortRanges(entry.ports ?? []) || 'any';
}

/** Reads `Bearer <token>` from an Authorization value. */
export function bearer(value: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(value ?? '');
  return m?.[1];
}
