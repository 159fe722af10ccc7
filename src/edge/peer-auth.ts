import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** The shortest `peer-secret` an edge accepts, in bytes (UTF-8). */
export const MIN_PEER_SECRET_BYTES = 16;
/** How far a peer's clock may be from ours, either way, for its handshake to count, in ms. */
export const PEER_CLOCK_WINDOW_MS = 30_000;
/** Longest edge id a peer may present (`--edge-id`). */
export const MAX_PEER_ID_CHARS = 128;
/** WebSocket path of the peer listener. */
export const PEER_PATH = '/_jetty/peer';

/** Handshake fields (request headers of the peer's WebSocket upgrade). */
export const PEER_ID_HEADER = 'jetty-peer-edge';
export const PEER_TIME_HEADER = 'jetty-peer-time';
export const PEER_MAC_HEADER = 'jetty-peer-mac';
export const PEER_NONCE_HEADER = 'jetty-peer-nonce';

/**
 * Most handshakes the peer listener remembers at once, each until its time leaves the clock window:
 * a handshake seen before is refused (a replay). Peers connect rarely (one connection each, kept), so
 * a full table means a flood: new handshakes are refused until entries expire.
 */
export const MAX_REMEMBERED_HANDSHAKES = 4_096;

const EDGE_ID = /^[A-Za-z0-9._:-]+$/;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const MAC_BYTES = 32;

/** HMAC-SHA256 over a domain-separated `edgeId`, `timeMs` and `nonce`: the peer proves it knows the secret. */
function mac(secret: string, edgeId: string, timeMs: number, nonce: string): Buffer {
  return createHmac('sha256', secret).update(`jetty-peer-v1\n${edgeId}\n${timeMs}\n${nonce}`).digest();
}

/**
 * The handshake headers an edge sends to a peer: its id, the time, a random nonce, and an HMAC of the
 * three under the shared secret. The secret itself never crosses the wire; the MAC is good for
 * PEER_CLOCK_WINDOW_MS and once (PeerHandshakes remembers it). Whoever reads a plain-text link still
 * reads its traffic: peer links across an untrusted network belong on TLS (the edge's certificate).
 */
export function peerAuthHeaders(secret: string, edgeId: string, now = Date.now()): Record<string, string> {
  const nonce = randomBytes(16).toString('base64url');
  return {
    [PEER_ID_HEADER]: edgeId,
    [PEER_TIME_HEADER]: String(now),
    [PEER_NONCE_HEADER]: nonce,
    [PEER_MAC_HEADER]: mac(secret, edgeId, now, nonce).toString('base64url'),
  };
}

/**
 * The peer's edge id when its handshake headers carry a valid MAC within the clock window, else
 * undefined. Every field is hostile: one value each, bounded, the MAC compared in constant time.
 */
export function verifyPeerAuth(secret: string, headers: IncomingHttpHeaders, now = Date.now()): string | undefined {
  const id = headers[PEER_ID_HEADER];
  const time = headers[PEER_TIME_HEADER];
  const nonce = headers[PEER_NONCE_HEADER];
  const presented = headers[PEER_MAC_HEADER];
  if (typeof id !== 'string' || typeof time !== 'string' || typeof nonce !== 'string' || typeof presented !== 'string') return undefined;
  if (id.length > MAX_PEER_ID_CHARS || !EDGE_ID.test(id) || !/^\d{1,16}$/.test(time) || !NONCE.test(nonce)) return undefined;
  const timeMs = Number(time);
  if (Math.abs(now - timeMs) > PEER_CLOCK_WINDOW_MS) return undefined;
  const given = Buffer.from(presented, 'base64url');
  // Only the canonical spelling: the decoder skips padding, whitespace and stray characters and ignores
  // the last character's low bits, so other spellings of one MAC would slip past the replay table.
  if (given.byteLength !== MAC_BYTES || given.toString('base64url') !== presented) return undefined;
  return timingSafeEqual(given, mac(secret, id, timeMs, nonce)) ? id : undefined;
}

/** MAC of the owner's answer: its id, bound to the nonce the connecting edge sent. */
function answerMac(secret: string, edgeId: string, nonce: string): Buffer {
  return createHmac('sha256', secret).update(`jetty-peer-v1-answer\n${edgeId}\n${nonce}`).digest();
}

/**
 * Headers of the peer listener's 101 answer: its edge id and an HMAC of it and the connecting edge's
 * nonce. The connecting edge checks them (verifyPeerAnswer) before it sends any request: a listener
 * without the secret (a stale peer URL now served by something else, an impostor) never gets one.
 */
export function peerAnswerHeaders(secret: string, edgeId: string, nonce: string): Record<string, string> {
  return { [PEER_ID_HEADER]: edgeId, [PEER_MAC_HEADER]: answerMac(secret, edgeId, nonce).toString('base64url') };
}

/** True when a 101 answer comes from edge `expectedId` holding the secret (for our `nonce`). */
export function verifyPeerAnswer(secret: string, headers: IncomingHttpHeaders, expectedId: string, nonce: string): boolean {
  const id = headers[PEER_ID_HEADER];
  const presented = headers[PEER_MAC_HEADER];
  if (id !== expectedId || typeof presented !== 'string') return false;
  const given = Buffer.from(presented, 'base64url');
  return given.byteLength === MAC_BYTES && timingSafeEqual(given, answerMac(secret, expectedId, nonce));
}

/**
 * The peer listener's check of handshakes: verifyPeerAuth, and each valid handshake accepted once
 * (its MAC remembered while its time is inside the clock window, at most MAX_REMEMBERED_HANDSHAKES).
 */
export class PeerHandshakes {
  /** MAC → when its handshake leaves the clock window, ms. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly secret: string) {}

  /** The peer's edge id, or undefined: wrong secret, out of the window, a replay, or the table full. */
  verify(headers: IncomingHttpHeaders, now = Date.now()): string | undefined {
    const id = verifyPeerAuth(this.secret, headers, now);
    if (id === undefined) return undefined;
    const key = headers[PEER_MAC_HEADER] as string;
    if (this.seen.has(key)) return undefined;
    if (this.seen.size >= MAX_REMEMBERED_HANDSHAKES) {
      for (const [k, until] of this.seen) if (until < now) this.seen.delete(k);
      if (this.seen.size >= MAX_REMEMBERED_HANDSHAKES) return undefined;
    }
    this.seen.set(key, Number(headers[PEER_TIME_HEADER]) + PEER_CLOCK_WINDOW_MS);
    return id;
  }
}
