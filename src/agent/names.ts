import { randomInt } from 'node:crypto';

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

/** A readable random tunnel name such as `swift-otter-4821`. */
export function randomName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${randomInt(1000, 10000)}`;
}
