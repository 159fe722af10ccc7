import { createHmac, timingSafeEqual } from 'node:crypto';
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

const EDGE_ID = /^[A-Za-z0-9._:-]+$/;
const MAC_BYTES = 32;

/** HMAC-SHA256 over a domain-separated `edgeId` and `timeMs`: the peer proves it knows the secret. */
function mac(secret: string, edgeId: string, timeMs: number): Buffer {
  return createHmac('sha256', secret).update(`jetty-peer-v1\n${edgeId}\n${timeMs}`).digest();
}

/**
 * The handshake headers an edge sends to a peer: its id, the time, and an HMAC of both under the
 * shared secret. The secret itself never crosses the wire; the MAC is good for PEER_CLOCK_WINDOW_MS,
 * so a captured handshake could be replayed within that window: peer links across an untrusted
 * network belong on TLS (the edge's certificate), where it cannot be captured.
 */
export function peerAuthHeaders(secret: string, edgeId: string, now = Date.now()): Record<string, string> {
  return { [PEER_ID_HEADER]: edgeId, [PEER_TIME_HEADER]: String(now), [PEER_MAC_HEADER]: mac(secret, edgeId, now).toString('base64url') };
}

/**
 * The peer's edge id when its handshake headers carry a valid MAC within the clock window, else
 * undefined. Every field is hostile: one value each, bounded, the MAC compared in constant time.
 */
export function verifyPeerAuth(secret: string, headers: IncomingHttpHeaders, now = Date.now()): string | undefined {
  const id = headers[PEER_ID_HEADER];
  const time = headers[PEER_TIME_HEADER];
  const presented = headers[PEER_MAC_HEADER];
  if (typeof id !== 'string' || typeof time !== 'string' || typeof presented !== 'string') return undefined;
  if (id.length > MAX_PEER_ID_CHARS || !EDGE_ID.test(id) || !/^\d{1,16}$/.test(time)) return undefined;
  const timeMs = Number(time);
  if (Math.abs(now - timeMs) > PEER_CLOCK_WINDOW_MS) return undefined;
  const given = Buffer.from(presented, 'base64url');
  if (given.byteLength !== MAC_BYTES) return undefined;
  return timingSafeEqual(given, mac(secret, id, timeMs)) ? id : undefined;
}
