import { randomInt } from 'node:crypto';

// Our own word lists: 32 adjectives and 32 nouns, each short enough that
// `adjective-noun-NNNN` stays within 28 characters (a DNS label and an iptables chain).
const ADJECTIVES = [
  'amber', 'ancient', 'bold', 'brisk', 'calm', 'clever', 'cosmic', 'crimson',
  'dusty', 'eager', 'fabled', 'fierce', 'gentle', 'golden', 'hidden', 'humble',
  'icy', 'jolly', 'lunar', 'mellow', 'misty', 'nimble', 'quiet', 'rapid',
  'rustic', 'silent', 'solar', 'stormy', 'swift', 'tidal', 'velvet', 'wandering',
] as const;
const NOUNS = [
  'anchor', 'badger', 'beacon', 'canyon', 'cedar', 'comet', 'delta', 'falcon',
  'fjord', 'glacier', 'harbor', 'heron', 'island', 'juniper', 'kestrel', 'lantern',
  'marmot', 'meadow', 'nebula', 'orchid', 'otter', 'pebble', 'quarry', 'raven',
  'reef', 'saffron', 'summit', 'thistle', 'tundra', 'valley', 'walrus', 'willow',
] as const;

/** A random `adjective-noun-NNNN` name: a valid DNS label of at most 28 characters. */
export function generateName(): string {
  const digits = String(randomInt(0, 10_000)).padStart(4, '0');
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${digits}`;
}

export const NAME_WORDS = { adjectives: ADJECTIVES, nouns: NOUNS };
