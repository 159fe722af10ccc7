import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { Logger } from '../logger.js';
import type { Lease } from './cluster.js';
import { CLAIM_LUA, LOCATE_LUA, RELEASE_LUA, RENEW_LUA } from './lease-scripts.js';

/** How long a lease lives in Redis without a renewal, ms (GOST's tunnel TTL). */
export const LEASE_TTL_MS = 15_000;
/** How long one Redis command may take before it counts as failed, ms (claims, releases, lookups). */
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;
/** Renewals give up sooner: a renewal that waits is worth less than the next one. */
export const RENEW_COMMAND_TIMEOUT_MS = 1_000;
/** Longest pause between reconnection attempts to Redis, ms. */
export const REDIS_RECONNECT_MAX_MS = 1_000;
/** Where every key of Jetty lives in Redis. */
export const REDIS_KEY_PREFIX = 'jetty:';
/** The pub/sub channel of cache hints: `<edgeId> <key>` whenever a key is claimed, taken over or released. */
export const HINT_CHANNEL = `${REDIS_KEY_PREFIX}hints`;

/** What a claim presents: the rules of ClaimOptions, with the secrets hashed. */
export interface LeaseClaim {
  owner: string;
  sessionId: string;
  /** sha256 (hex) of the session's resume secret, '' when it has none. */
  secretHash: string;
  resumeId: string;
  resumeHash: string;
  /** The largest epoch this edge has seen (the counter is raised to it if Redis lost its data). */
  minEpoch: number;
}

export interface LeaseRelease {
  sessionId: string;
  epoch: number;
  /** This edge has no other session of the key: its lease goes. */
  last: boolean;
  /** How long an emptied key stays held for its owner, ms; 0 = deleted. */
  graceMs: number;
}

/** A renewal's answer for one key. */
export type RenewStatus = 'ok' | 'gone' | 'fenced';

/** The live leases of a key and, when there is none, how long it is held for its owner's return. */
export interface LeaseView {
  leases: Lease[];
  graceLeftMs: number;
}

/** One finished Redis call, for the latency histogram and the errors counter. */
export type CommandObserver = (command: string, seconds: number, ok: boolean) => void;

export interface RedisLeasesInit {
  /** `redis://[user:password@]host:port/db` (or rediss://). */
  url: string;
  edgeId: string;
  logger: Logger;
  ttlMs?: number;
  commandTimeoutMs?: number;
  renewTimeoutMs?: number;
  onCommand?: CommandObserver;
}

interface LeaseCommands {
  jettyClaim(lease: string, counter: string, ...argv: (string | number)[]): Promise<[number, number?, string?]>;
  jettyRelease(lease: string, ...argv: (string | number)[]): Promise<number>;
  jettyRenew(...keysAndArgv: (string | number)[]): Promise<number[]>;
  jettyLocate(lease: string): Promise<(string | number)[]>;
}

type LeaseClient = Redis & LeaseCommands;

const require = createRequire(import.meta.url);

/**
 * ioredis, loaded by the first RedisLeases: only an edge with `--registry redis://…` uses it, and it
 * was ≈ 4 MiB of every edge's RSS and 40 ms of its start-up. (This file's URL helpers, which every
 * edge's settings use, need none of it.)
 */
const ioredis = (): typeof import('ioredis') => require('ioredis') as typeof import('ioredis');

/**
 * This edge's leases in Redis, over three ioredis clients: commands (claims, releases, lookups), renewals
 * (their own connection, so a slow claim never delays them, with no offline queue and a short timeout: a
 * renewal that cannot go now fails now), and the hint subscriber (a subscribed connection runs nothing
 * else). Every check-and-set is a Lua script (lease-scripts.ts). Emits `ready` when the command
 * connection is up, `hint` (edgeId, key) for each hint published by any edge.
 * Teardown order (close): hint subscriber quits → command and renewal clients quit.
 */
export class RedisLeases extends EventEmitter<{ ready: []; hint: [edgeId: string, key: string] }> {
  readonly edgeId: string;
  readonly ttlMs: number;
  private readonly cmd: LeaseClient;
  private readonly renewer: LeaseClient;
  private readonly sub: Redis;
  private readonly init: RedisLeasesInit;
  private closed = false;
  /** Said once per outage, not once per failed command. */
  private down = false;

  constructor(init: RedisLeasesInit) {
    super();
    this.init = init;
    this.edgeId = init.edgeId;
    this.ttlMs = init.ttlMs ?? LEASE_TTL_MS;
    const { Redis } = ioredis();
    const base: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 100, REDIS_RECONNECT_MAX_MS),
      connectTimeout: init.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS,
    };
    this.cmd = this.client('command', { ...base, commandTimeout: init.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS });
    this.renewer = this.client('renewal', { ...base, commandTimeout: init.renewTimeoutMs ?? RENEW_COMMAND_TIMEOUT_MS });
    // The subscriber queues its SUBSCRIBE until connected and resubscribes after each reconnection.
    this.sub = new Redis(init.url, { retryStrategy: base.retryStrategy, connectTimeout: base.connectTimeout, maxRetriesPerRequest: null });
    this.sub.on('error', () => undefined);
    this.sub.on('message', (_channel: string, message: string) => {
      const space = message.indexOf(' ');
      if (space > 0) this.emit('hint', message.slice(0, space), message.slice(space + 1));
    });
    void this.sub.subscribe(HINT_CHANNEL).catch(() => undefined);
    // Either connection coming up is worth a renewal (the renewal one writes the edge record).
    this.cmd.on('ready', () => this.emit('ready'));
    this.renewer.on('ready', () => this.emit('ready'));
  }

  private client(role: string, options: RedisOptions): LeaseClient {
    const client = new (ioredis().Redis)(this.init.url, options) as LeaseClient;
    client.defineCommand('jettyClaim', { numberOfKeys: 2, lua: CLAIM_LUA });
    client.defineCommand('jettyRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    client.defineCommand('jettyRenew', { lua: RENEW_LUA });
    client.defineCommand('jettyLocate', { numberOfKeys: 1, lua: LOCATE_LUA });
    client.on('error', (err: Error) => {
      if (this.down || this.closed) return;
      this.down = true;
      this.init.logger.warn({ role, err: err.message }, 'redis unreachable: held tunnels keep serving, new claims are refused');
    });
    client.on('ready', () => {
      if (!this.down) return;
      this.down = false;
      this.init.logger.info({ role }, 'redis reachable again');
    });
    return client;
  }

  /** Both connections are up (claims and renewals can be made). */
  get ready(): boolean {
    return this.cmd.status === 'ready' && this.renewer.status === 'ready';
  }

  /** Runs one call, timing it for the histogram. */
  private async timed<T>(command: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const out = await call();
      this.init.onCommand?.(command, (performance.now() - started) / 1000, true);
      return out;
    } catch (err) {
      this.init.onCommand?.(command, (performance.now() - started) / 1000, false);
      throw err;
    }
  }

  private leaseKey(key: string): string {
    return `${REDIS_KEY_PREFIX}lease:${key}`;
  }

  private edgeKey(edgeId: string): string {
    return `${REDIS_KEY_PREFIX}edge:${edgeId}`;
  }

  /** Claims `key` for this edge: its epoch, and the edge it was taken over from (if any); undefined = refused. */
  async claim(key: string, c: LeaseClaim): Promise<{ epoch: number; fencedEdge?: string } | undefined> {
    const [ok, epoch, fenced] = await this.timed('claim', () =>
      this.cmd.jettyClaim(this.leaseKey(key), `${REDIS_KEY_PREFIX}epoch`, this.edgeId, c.owner, c.sessionId, c.secretHash, c.resumeId, c.resumeHash, this.ttlMs, c.minEpoch),
    );
    if (ok !== 1) return undefined;
    return { epoch: Number(epoch), fencedEdge: fenced || undefined };
  }

  /** Releases one session of `key`; false when this edge's lease is gone or has another epoch. */
  async release(key: string, r: LeaseRelease): Promise<boolean> {
    const n = await this.timed('release', () => this.cmd.jettyRelease(this.leaseKey(key), this.edgeId, r.sessionId, r.epoch, r.last ? '1' : '0', r.graceMs));
    return n === 1;
  }

  /** Renews every lease of this edge and its edge record in one script call, on the renewal connection. */
  async renew(leases: readonly { key: string; epoch: number }[], peerUrl: string): Promise<RenewStatus[]> {
    const keys = [this.edgeKey(this.edgeId), ...leases.map((l) => this.leaseKey(l.key))];
    const argv = [this.edgeId, this.ttlMs, peerUrl, ...leases.map((l) => l.epoch)];
    const out = await this.timed('renew', () => this.renewer.jettyRenew(keys.length, ...keys, ...argv));
    return out.map((n) => (n === 1 ? 'ok' : n === 0 ? 'gone' : 'fenced'));
  }

  /** The live leases of `key` (this edge's included) and its remaining grace. */
  async locate(key: string): Promise<LeaseView> {
    const flat = await this.timed('locate', () => this.cmd.jettyLocate(this.leaseKey(key)));
    const leases: Lease[] = [];
    for (let i = 1; i + 1 < flat.length; i += 2) leases.push({ key, edgeId: String(flat[i]), epoch: Number(flat[i + 1]) });
    return { leases, graceLeftMs: Number(flat[0]) };
  }

  /** The peer URL an edge advertised ('' when it has none), or undefined when its record expired. */
  async peerUrl(edgeId: string): Promise<string | undefined> {
    const url = await this.timed('get', () => this.cmd.get(this.edgeKey(edgeId)));
    return url ?? undefined;
  }

  /** Tells every edge (this one too) that `key` changed hands. */
  async hint(key: string): Promise<void> {
    await this.timed('publish', () => this.cmd.publish(HINT_CHANNEL, `${this.edgeId} ${key}`));
  }

  /** Deletes this edge's record (graceful close: peers stop forwarding here at once). */
  async forgetEdge(): Promise<void> {
    await this.timed('del', () => this.cmd.del(this.edgeKey(this.edgeId)));
  }

  /** Quits every connection (pending replies are awaited, each bounded by its command timeout). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const quit = async (c: Redis): Promise<void> => {
      if (c.status === 'ready') await c.quit().catch(() => c.disconnect());
      else c.disconnect();
    };
    // The subscriber has nothing to flush, and no command timeout: a frozen Redis would hold a QUIT forever.
    this.sub.disconnect();
    await Promise.all([quit(this.cmd), quit(this.renewer)]);
  }
}

/** `--registry`: the in-memory registry of one edge, or a Redis URL. */
export const MEMORY_REGISTRY = 'memory';

/**
 * Checks a `--registry` value: `memory`, or `redis://[user:password@]host[:port][/db]` (`rediss://`
 * for TLS). Returns it unchanged; throws a message naming what is wrong (the password never shown).
 */
export function parseRegistryUrl(raw: string): string {
  if (raw === MEMORY_REGISTRY) return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`want ${MEMORY_REGISTRY} or redis://HOST:PORT/DB`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`want ${MEMORY_REGISTRY} or a redis:// (rediss://) URL, not ${url.protocol}//`);
  if (url.hostname === '') throw new Error('the Redis URL has no host');
  if (!/^(\/\d{0,2})?$/.test(url.pathname)) throw new Error('the database after the host must be a number (redis://HOST:PORT/0)');
  return raw;
}

/** A registry URL as logs and --check-config show it: the password replaced by `***`. */
export function redactRegistryUrl(value: unknown): unknown {
  if (typeof value !== 'string' || value === MEMORY_REGISTRY) return value;
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return value.replace(/\/\/[^@/]*@/, '//***@');
  }
}
