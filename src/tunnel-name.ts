import { randomInt } from 'node:crypto';

/** A tunnel name is one DNS label: lower-case letters, digits and inner hyphens, 1–63 characters. */
export const TUNNEL_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Longest tunnel name: one DNS label. */
export const MAX_TUNNEL_NAME_CHARS = 63;

export function isValidTunnelName(name: string): boolean {
  return TUNNEL_NAME_PATTERN.test(name);
}

const ADJECTIVES = [
  'amber', 'brave', 'brisk', 'calm', 'clever', 'cosmic', 'crisp', 'daring', 'eager', 'fancy',
  'gentle', 'golden', 'happy', 'humble', 'jolly', 'keen', 'lively', 'lucky', 'mellow', 'merry',
  'nimble', 'noble', 'proud', 'quick', 'quiet', 'rapid', 'silver', 'sleek', 'sunny', 'swift',
  'tidy', 'vivid', 'witty', 'zesty',
];
const NOUNS = [
  'badger', 'beacon', 'breeze', 'canyon', 'comet', 'coral', 'dolphin', 'falcon', 'fern', 'forest',
  'harbor', 'heron', 'island', 'lagoon', 'lantern', 'maple', 'meadow', 'otter', 'panda', 'pebble',
  'pine', 'raven', 'river', 'robin', 'sparrow', 'summit', 'tiger', 'tulip', 'valley', 'walrus',
  'willow', 'zebra',
];

/**
 * A readable random tunnel name such as `swift-otter-4821`, after `prefix` when given (`dev-` gives
 * `dev-swift-otter-4821`); a prefix too long for the words gets only the digits, and undefined when
 * not even they fit in one DNS label.
 */
export function randomName(prefix = ''): string | undefined {
  const digits = String(randomInt(1000, 10000));
  const words = `${prefix}${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${digits}`;
  if (words.length <= MAX_TUNNEL_NAME_CHARS) return words;
  const short = `${prefix}${digits}`;
  return short.length <= MAX_TUNNEL_NAME_CHARS ? short : undefined;
}
