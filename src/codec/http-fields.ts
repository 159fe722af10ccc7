import type { Header } from './http-chunk.js';

/**
 * Connection-specific fields (RFC 9110 §7.6.1) that a proxy must not forward. `Trailer` is end-to-end
 * and stays. Framing (Transfer-Encoding) is re-done by each hop.
 */
export const HOP_BY_HOP_FIELDS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Turns Node's flat `rawHeaders` ([name, value, name, value, …]) into an ordered field list without
 * hop-by-hop fields, nor those the Connection field names, nor any name in `drop` (lower-case).
 */
export function endToEndFields(rawHeaders: readonly string[], drop?: ReadonlySet<string>): Header[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() === 'connection') {
      named ??= new Set();
      for (const token of rawHeaders[i + 1].split(',')) {
        const t = token.trim().toLowerCase();
        if (t) named.add(t);
      }
    }
  }
  const out: Header[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i].toLowerCase();
    if (HOP_BY_HOP_FIELDS.has(lower) || named?.has(lower) || drop?.has(lower)) continue;
    out.push({ name: rawHeaders[i], value: rawHeaders[i + 1] });
  }
  return out;
}

/** Flattens a field list into the [name, value, …] array Node's writeHead and request accept. */
export function flatFields(headers: readonly Header[] | undefined): string[] {
  const out: string[] = [];
  if (headers) for (const h of headers) out.push(h.name, h.value);
  return out;
}
