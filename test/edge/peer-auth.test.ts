import * as assert from 'uvu/assert';
import { MAX_REMEMBERED_HANDSHAKES, PEER_CLOCK_WINDOW_MS, PEER_MAC_HEADER, PEER_NONCE_HEADER, PeerHandshakes, peerAuthHeaders, verifyPeerAuth } from '../../src/edge/peer-auth.js';
import { suite } from '../helpers/suite.js';

const test = suite('edge/peer-auth');
const SECRET = 'sixteen-bytes-or-more';

test('a handshake made with the secret names its edge; another secret, a changed field or a clock outside the window does not', () => {
  const now = 1_800_000_000_000;
  const h = peerAuthHeaders(SECRET, 'edge-a', now);
  assert.is(verifyPeerAuth(SECRET, h, now + 1000), 'edge-a');
  assert.is(verifyPeerAuth('another-secret-value', h, now), undefined);
  assert.is(verifyPeerAuth(SECRET, { ...h, 'jetty-peer-edge': 'edge-b' }, now), undefined);
  assert.is(verifyPeerAuth(SECRET, { ...h, [PEER_NONCE_HEADER]: 'A'.repeat(22) }, now), undefined);
  assert.is(verifyPeerAuth(SECRET, { ...h, [PEER_MAC_HEADER]: h[PEER_MAC_HEADER].slice(0, 20) }, now), undefined);
  assert.is(verifyPeerAuth(SECRET, h, now + PEER_CLOCK_WINDOW_MS + 1), undefined);
  assert.is(verifyPeerAuth(SECRET, h, now - PEER_CLOCK_WINDOW_MS - 1), undefined);
  // Hostile shapes: repeated headers arrive as arrays, absurd ids and times.
  assert.is(verifyPeerAuth(SECRET, { ...h, 'jetty-peer-edge': ['edge-a', 'edge-a'] as unknown as string }, now), undefined);
  assert.is(verifyPeerAuth(SECRET, { ...h, 'jetty-peer-time': '1e12' }, now), undefined);
  assert.is(verifyPeerAuth(SECRET, {}, now), undefined);
});

test('PeerHandshakes accepts each handshake once (a replay inside the window is refused) and stays bounded', () => {
  const now = 1_800_000_000_000;
  const handshakes = new PeerHandshakes(SECRET);
  const h = peerAuthHeaders(SECRET, 'edge-a', now);
  assert.is(handshakes.verify(h, now), 'edge-a');
  assert.is(handshakes.verify(h, now + 10), undefined);
  // Other spellings of the same MAC (padding, whitespace, a stray character, the last character's
  // unused low bits) decode to the same bytes: they are replays too.
  const m = h[PEER_MAC_HEADER];
  const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = m.slice(0, -1) + last[last.indexOf(m.at(-1) as string) ^ 1];
  assert.equal(Buffer.from(sibling, 'base64url'), Buffer.from(m, 'base64url'));
  for (const spelling of [`${m}=`, `${m} `, `${m}!`, sibling]) assert.is(handshakes.verify({ ...h, [PEER_MAC_HEADER]: spelling }, now + 10), undefined, spelling);
  assert.is(handshakes.verify(peerAuthHeaders(SECRET, 'edge-a', now), now), 'edge-a');
  // Full of live entries: new handshakes wait; once those leave the window, they are pruned.
  for (let i = 2; i < MAX_REMEMBERED_HANDSHAKES; i++) handshakes.verify(peerAuthHeaders(SECRET, 'edge-a', now), now);
  assert.is(handshakes.verify(peerAuthHeaders(SECRET, 'edge-b', now), now), undefined);
  const later = now + PEER_CLOCK_WINDOW_MS + 1;
  assert.is(handshakes.verify(peerAuthHeaders(SECRET, 'edge-b', later), later), 'edge-b');
});

test.run();
