import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** One configured agent token: its SHA-256 and the tunnel names it may claim (exact or `prefix-*`). */
export interface TokenEntry {
  /** `sha256:<64 hex>`; the token itself is never stored. */
  hash: string;
  names: string[];
}

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
    const e = entry as { hash?: unknown; names?: unknown };
    if (typeof entry !== 'object' || entry === null) throw new Error(`entry ${i} must be a mapping`);
    for (const k of Object.keys(e)) if (k !== 'hash' && k !== 'names') throw new Error(`entry ${i}: unknown key "${k}"`);
    if (typeof e.hash !== 'string' || !HASH.test(e.hash)) throw new Error(`entry ${i}: hash must be sha256:<64 hex digits> (jetty token create prints one)`);
    if (!Array.isArray(e.names) || e.names.length === 0) throw new Error(`entry ${i}: names must list at least one name or prefix-*`);
    for (const n of e.names) if (typeof n !== 'string' || !NAME_PATTERN.test(n)) throw new Error(`entry ${i}: bad name pattern ${JSON.stringify(n)} (want ${NAME_PATTERN_RULE})`);
    return { hash: e.hash, names: e.names as string[] };
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

  /** Whether `entry` may claim `name` (exact, `prefix-*`, or `*`). */
  static mayClaim(entry: TokenEntry, name: string): boolean {
    return entry.names.some((p) => p === '*' || p === name || (p.endsWith('-*') && name.startsWith(p.slice(0, -1)) && name.length > p.length - 1));
  }
}

/** Reads `Bearer <token>` from an Authorization value. */
export function bearer(value: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(value ?? '');
  return m?.[1];
}
