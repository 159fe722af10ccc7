import type { ParseArgsConfig } from 'node:util';
import { UsageError, toError } from './errors.js';

/**
 * A suggestion is offered only this close: at most this many single-character edits, and never more
 * than a third of the word (so `--x` does not suggest `--ws-mask`).
 */
export const MAX_SUGGESTION_EDITS = 3;

/** Levenshtein distance (insert, delete, substitute, and an adjacent swap counts as one edit). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate nearest to `word`, when one is close enough to be what was meant. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.min(MAX_SUGGESTION_EDITS, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const distance = editDistance(word.toLowerCase(), c);
    if (distance < bestDistance) {
      best = c;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** ` (did you mean X?)`, or '' when nothing is close. */
export function suggestion(word: string, candidates: readonly string[], render: (c: string) => string = (c) => c): string {
  const near = closest(word, candidates);
  return near === undefined ? '' : ` (did you mean ${render(near)}?)`;
}

/**
 * Turns a `node:util` parseArgs failure into one line of ours: the flag, what is wrong, and the flag
 * that was probably meant. Node's own text carries advice about `--` and positionals that does not
 * apply to a mistyped flag.
 */
export function argsError(err: unknown, options: NonNullable<ParseArgsConfig['options']>): UsageError {
  const e = toError(err) as Error & { code?: string };
  const flags = Object.keys(options);
  const quoted = /'([^']*)'/.exec(e.message)?.[1] ?? '';
  let message = e.message.split(/\.\s|\n/)[0];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = quoted.split('=')[0];
    message = `unknown flag ${flag}${suggestion(flag.replace(/^-+/, ''), flags, (f) => `--${f}`)}`;
  } else if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = quoted.split(' ')[0];
    if (/ambiguous/.test(e.message)) message = `${flag} needs a value (one that starts with "-" is written ${flag}=VALUE)`;
    else message = /does not take/.test(e.message) ? `${flag} takes no value` : `${flag} needs a value`;
  } else if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    message = `unexpected argument "${quoted}"`;
  }
  return new UsageError(message, { cause: err });
}
