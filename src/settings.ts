import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { parseHostPort } from './address.js';
import { UsageError } from './errors.js';

const require = createRequire(import.meta.url);
/** The YAML parser, loaded only by a run that reads or prints a config file. */
const yaml = (): typeof Yaml => require('yaml') as typeof Yaml;

/**
 * One setting of a command: a flag, a JETTY_* variable and a config-file key of the same name.
 * Precedence: flag > environment > config file > default. `parse` turns a raw value (a string from
 * argv or the environment, any YAML value from the file) into the typed one or throws a message.
 */
export interface SettingSpec<T = unknown> {
  /** Flag without dashes, and the YAML key. */
  name: string;
  /** Help text (one line). */
  help: string;
  default: T;
  parse: (raw: unknown) => T;
  /** Masked by --check-config. */
  secret?: boolean;
  /** How --check-config and error messages show a value that is partly secret (a URL's password). */
  show?: (value: unknown) => unknown;
  /** A boolean switch (`--flag`), not `--flag VALUE`. */
  boolean?: boolean;
  /** Only in the config file (structured values such as the token list). */
  fileOnly?: boolean;
}

export type SettingValues = Record<string, unknown>;

// ---- defaults shared by the edge and the agent, and by their settings and their init objects ----

/** Drain (edge) or leave (agent): how long exchanges in flight may run after the first signal, in ms. */
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
/** Edge: how long requests for a tunnel whose agent dropped are held for its return, in ms. */
export const DEFAULT_RECONNECT_GRACE_MS = 5_000;
/** Edge CLI: after start-up, how long requests for a tunnel no agent holds yet wait for one, in ms. */
export const DEFAULT_STARTUP_GRACE_MS = 5_000;

/** JETTY_LISTEN for `listen`, JETTY_GRPC_LISTEN for `grpc-listen`. */
export const envName = (name: string): string => `JETTY_${name.toUpperCase().replace(/-/g, '_')}`;

// ---- value parsers: each throws a plain message; resolveSettings adds where the value came from ----

export const parseString = (raw: unknown): string => {
  if (typeof raw !== 'string' && typeof raw !== 'number') throw new Error('want a string');
  return String(raw);
};

export function parseInt(min: number, max: number): (raw: unknown) => number {
  return (raw) => {
    const text = String(raw);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new Error(`want a whole number from ${min} to ${max}`);
    return n;
  };
}

export const parseBool = (raw: unknown): boolean => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0' || raw === '') return false;
  throw new Error('want true or false');
};

export function parseOneOf<T extends string>(allowed: readonly T[]): (raw: unknown) => T {
  return (raw) => {
    const v = String(raw);
    if (!(allowed as readonly string[]).includes(v)) throw new Error(`want ${allowed.join('|')}`);
    return v as T;
  };
}

export function parseListOf<T extends string>(allowed: readonly T[]): (raw: unknown) => T[] {
  return (raw) => {
    const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
    const out = items.map((s) => s.trim()).filter(Boolean);
    if (out.length === 0) throw new Error('want at least one entry');
    for (const item of out) if (!(allowed as readonly string[]).includes(item)) throw new Error(`unknown entry "${item}" (want ${allowed.join(',')})`);
    return out as T[];
  };
}

/** `host:port`, validated; '' allowed when `optional` (the listener is off). */
export function parseAddress(optional = false): (raw: unknown) => string {
  return (raw) => {
    const v = String(raw);
    if (optional && v === '') return v;
    parseHostPort(v);
    return v;
  };
}

// ---- resolution ----

export interface ConfigFile {
  path: string;
  values: Record<string, unknown>;
}

/** Reads a YAML config file; any problem is a UsageError naming the file. */
export function loadConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let values: unknown;
  try {
    values = yaml().parse(text) ?? {};
  } catch (err) {
    throw new UsageError(`config file ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new UsageError(`config file ${path} must be a mapping of setting names to values`);
  }
  return { path, values: values as Record<string, unknown> };
}

/** parseArgs options for the flags of `specs` (plus --help, --config and extra switches). */
export function argsConfig(specs: readonly SettingSpec[], extra: string[] = []): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' }, config: { type: 'string' } };
  for (const s of specs) if (!s.fileOnly) options[s.name] = { type: s.boolean ? 'boolean' : 'string' };
  for (const e of extra) options[e] = { type: 'boolean' };
  return options;
}

/** Applies flag > environment > file > default to every setting, strictly. */
export function resolveSettings(
  specs: readonly SettingSpec[],
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file?: ConfigFile,
): SettingValues {
  if (file) {
    const known = new Set(specs.map((s) => s.name));
    for (const key of Object.keys(file.values)) {
      if (!known.has(key)) throw new UsageError(`unknown key "${key}" in ${file.path}`);
    }
  }
  const out: SettingValues = {};
  for (const s of specs) {
    let raw: unknown;
    let from: string | undefined;
    if (!s.fileOnly && flags[s.name] !== undefined) {
      raw = flags[s.name];
      from = `--${s.name}`;
    } else if (!s.fileOnly && env[envName(s.name)] !== undefined) {
      raw = env[envName(s.name)];
      from = envName(s.name);
    } else if (file && file.values[s.name] !== undefined) {
      raw = file.values[s.name];
      from = `"${s.name}" in ${file.path}`;
    }
    if (from === undefined) {
      out[s.name] = s.default;
      continue;
    }
    try {
      out[s.name] = s.parse(raw);
    } catch (err) {
      const visible = s.show ? s.show(raw) : raw;
      const shown = typeof visible === 'string' ? `"${visible}"` : JSON.stringify(visible);
      throw new UsageError(`invalid ${from} ${s.secret ? '(hidden)' : shown}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}

/** Reads the file a setting names (a certificate, a key); any problem is a UsageError naming the setting. */
export function readSettingFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read --${setting} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Masks a secret for display: the first 4 characters, then an ellipsis. */
export function mask(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? '' : `${value.slice(0, 4)}…`;
  if (Array.isArray(value)) return value.map(mask);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'names' ? v : mask(v)]));
  return value;
}

/** The effective configuration as YAML, secrets masked (for --check-config). */
export function printableSettings(specs: readonly SettingSpec[], values: SettingValues): string {
  const shown: Record<string, unknown> = {};
  for (const s of specs) shown[s.name] = s.secret ? mask(values[s.name]) : s.show ? s.show(values[s.name]) : values[s.name];
  return yaml().stringify(shown);
}

/** One help row: the flag as typed (`--config FILE`) and what it does. */
export type HelpRow = readonly [flag: string, text: string];

/** Room between the flag column and the text column of help rows. */
const HELP_GAP = 2;

/**
 * Help lines for the settings of a command, with `before` and `after` rows (`--config FILE`,
 * `-h, --help`), every text starting in one column: the longest flag's width plus HELP_GAP.
 */
export function settingsHelp(specs: readonly SettingSpec[], before: readonly HelpRow[] = [], after: readonly HelpRow[] = []): string {
  const rows: HelpRow[] = specs.map((s) => {
    const flag = s.fileOnly ? `(config) ${s.name}` : `--${s.name}${s.boolean ? '' : ' VALUE'}`;
    const def = Array.isArray(s.default) ? s.default.join(',') : String(s.default);
    const env = s.fileOnly ? '' : `${envName(s.name)}; `;
    return [flag, `${s.help} (${env}default ${def === '' ? 'none' : def})`];
  });
  return helpRows([...before, ...rows, ...after]);
}

/** Help rows aligned in two columns, indented by two spaces. */
export function helpRows(rows: readonly HelpRow[]): string {
  const width = Math.max(...rows.map(([flag]) => flag.length)) + HELP_GAP;
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`).join('\n');
}
