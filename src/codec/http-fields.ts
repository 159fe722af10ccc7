import { ProtocolError } from '../errors.js';
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
 * Fields a trailer section must not carry (RFC 9110 §6.5.1): framing, routing, the trailer list itself
 * and content metadata. A peer must not move them behind the head, where the other hop would not
 * look for them.
 */
export const TRAILER_FORBIDDEN_FIELDS: ReadonlySet<string> = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'trailer',
  'expect',
  'content-encoding',
  'content-type',
  'content-range',
]);

/** Most digits of a Content-Length: 15 keeps every value a safe integer (below 2^53). */
const MAX_CONTENT_LENGTH_DIGITS = 15;
const CONTENT_LENGTH = new RegExp(`^\\d{1,${MAX_CONTENT_LENGTH_DIGITS}}$`);

/** Pairs Node's flat `rawHeaders` ([name, value, name, value, …]) into a field list. */
export function pairFields(rawHeaders: readonly string[]): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push({ name: rawHeaders[i], value: rawHeaders[i + 1] });
  return out;
}

/**
 * The fields of `headers` a proxy forwards, in order with repeats: without hop-by-hop fields, nor those
 * the Connection field names, nor any name in `drop` (lower-case).
 */
export function endToEndHeaders(headers: readonly Header[], drop?: ReadonlySet<string>): Header[] {
  let named: Set<string> | undefined;
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'connection') continue;
    named ??= new Set();
    for (const token of h.value.split(',')) {
      const t = token.trim().toLowerCase();
      if (t) named.add(t);
    }
  }
  return headers.filter((h) => {
    const lower = h.name.toLowerCase();
    return !(HOP_BY_HOP_FIELDS.has(lower) || named?.has(lower) || drop?.has(lower));
  });
}

/** endToEndHeaders over Node's flat `rawHeaders`. */
export function endToEndFields(rawHeaders: readonly string[], drop?: ReadonlySet<string>): Header[] {
  return endToEndHeaders(pairFields(rawHeaders), drop);
}

/** The end-to-end fields of a trailer section, without those a trailer must not carry. */
export function trailerFields(headers: readonly Header[], drop?: ReadonlySet<string>): Header[] {
  return endToEndHeaders(headers, drop).filter((h) => !TRAILER_FORBIDDEN_FIELDS.has(h.name.toLowerCase()));
}

/**
 * The body length a field list declares, or undefined when it has no Content-Length. Repeated fields
 * or a comma list must all carry the same decimal number (RFC 9110 §8.6); anything else is ambiguous
 * framing, a ProtocolError.
 */
export function declaredLength(headers: readonly Header[]): number | undefined {
  let length: number | undefined;
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'content-length') continue;
    for (const part of h.value.split(',')) {
      const text = part.trim();
      if (!CONTENT_LENGTH.test(text)) throw new ProtocolError('Content-Length is not a decimal number');
      const n = Number(text);
      if (length !== undefined && n !== length) throw new ProtocolError('several different Content-Length values');
      length = n;
    }
  }
  return length;
}

/** A message head as a proxy re-frames it: end-to-end fields, at most one Content-Length. */
export interface FramedFields {
  headers: Header[];
  /** The one declared body length; undefined lets the writer frame the body itself (chunked). */
  length: number | undefined;
}

/**
 * Prepares a peer's head for the next hop: hop-by-hop fields (Transfer-Encoding among them) and those
 * the Connection field names are dropped, Content-Length is checked (declaredLength) and kept once, where
 * it first stood. The next hop then frames the body by that length or, without one, by itself.
 */
export function framedFields(headers: readonly Header[]): FramedFields {
  const length = declaredLength(headers);
  const out: Header[] = [];
  let placed = false;
  for (const h of endToEndHeaders(headers)) {
    if (h.name.toLowerCase() !== 'content-length') out.push(h);
    else if (!placed) {
      placed = true;
      out.push({ name: h.name, value: String(length) });
    }
  }
  return { headers: out, length };
}

/**
 * The protocol a request asks to switch to (RFC 9110 §7.8): its Upgrade value when a Connection field
 * lists the `upgrade` token, else undefined. Such a request keeps `Connection: upgrade` and its `Upgrade`
 * field through the tunnel, the one exception to hop-by-hop stripping (DESIGN.md §6.2).
 */
export function upgradeProtocol(headers: readonly Header[]): string | undefined {
  let upgrade: string | undefined;
  let asked = false;
  for (const h of headers) {
    const lower = h.name.toLowerCase();
    if (lower === 'upgrade') upgrade = upgrade === undefined ? h.value : `${upgrade}, ${h.value}`;
    else if (lower === 'connection' && h.value.split(',').some((t) => t.trim().toLowerCase() === 'upgrade')) asked = true;
  }
  return asked && upgrade !== undefined && upgrade.trim() !== '' ? upgrade.trim() : undefined;
}

/** The two fields an upgrade request carries past hop-by-hop stripping. */
export function upgradeFields(protocol: string): Header[] {
  return [
    { name: 'Connection', value: 'upgrade' },
    { name: 'Upgrade', value: protocol },
  ];
}

/** Flattens a field list into the [name, value, …] array Node's writeHead and request accept. */
export function flatFields(headers: readonly Header[] | undefined): string[] {
  const out: string[] = [];
  if (headers) for (const h of headers) out.push(h.name, h.value);
  return out;
}
