import { createHash, timingSafeEqual } from 'node:crypto';
import { NameTakenError } from '../errors.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';

export interface OpenExchangeOptions {
  /** The public client went away: stop waiting for a slot (the promise rejects with its reason). */
  signal?: AbortSignal;
}

/**
 * A tunnel's session as the registry and the router need it (the role; AgentSession is the local
 * actor that plays it, a session on another edge could too).
 */
export interface TunnelSession {
  readonly id: string;
  readonly name: string;
  /** How the agent is connected, for logs and metrics (`grpc`, `websocket/proto`…). */
  readonly transport: string;
  /** Exchanges in flight or waiting; lookup picks the lowest. */
  readonly load: number;
  /** Takes no new exchanges. */
  readonly draining: boolean;
  /** Gone for good. */
  readonly stopped: boolean;
  /** Settles once the session has ended and released everything. */
  readonly closed: Promise<void>;
  /** Starts an exchange whose request begins with `head` (see AgentSession.openExchange). */
  openExchange(head: HTTPChunk, options?: OpenExchangeOptions): Promise<ExchangeDuplex>;
  /**
   * Starts the exchange at once when nothing would make it wait (see AgentSession.openNow); undefined
   * otherwise, and the caller takes openExchange's way. Optional: a session may always wait.
   */
  openNow?(head: HTTPChunk): ExchangeDuplex | undefined;
  /** Ends the session now. Idempotent. */
  abort(err: Error): void;
}

export interface ClaimOptions {
  /**
   * Who the session speaks for: the token's hash, or '' when the edge runs open. Sessions of the
   * same non-empty owner and name form a pool; anyone else is refused.
   */
  owner: string;
  /** The id of this agent's previous session: it takes over from it (reconnect after a network loss). */
  resume?: string;
  /**
   * The previous session's resume secret. Without an owner (open edge) a session id proves nothing, so
   * a live session is replaced only when this matches the secret it was claimed with.
   */
  resumeSecret?: string;
  /** This session's resume secret (issued to its agent in Registered). */
  secret?: string;
}

export interface ReleaseOptions {
  /** The agent may come back (connection lost): hold the name and its requests for the grace period. */
  reconnecting: boolean;
}

/**
 * Which sessions serve which tunnel name. The in-memory registry is the embedded default; a shared
 * one (several edges behind a load balancer) implements the same interface.
 */
export interface Registry {
  /** Adds `session` under `name`; throws NameTakenError when another owner holds it. */
  claim(name: string, session: TunnelSession, options: ClaimOptions): Promise<void>;
  /** Removes `session` from `name`. */
  release(name: string, session: TunnelSession, options: ReleaseOptions): Promise<void>;
  /** The healthy session of `name` with the fewest exchanges in flight. */
  lookup(name: string): TunnelSession | undefined;
  /**
   * While `name` has no healthy session but is held (reconnect grace, or only draining members),
   * resolves once a session is back, or undefined at the deadline.
   */
  waitFor(name: string, timeoutMs: number): Promise<TunnelSession | undefined>;
}

interface Pool {
  owner: string;
  members: Set<TunnelSession>;
  /** The resume secret each member was claimed with. */
  secrets: Map<TunnelSession, string>;
  /** Set while empty and waiting for its agent to reconnect. */
  graceUntil?: number;
  /** Made by a request while the edge was starting (agents still reconnecting): anyone may claim it. */
  provisional?: boolean;
  graceTimer?: NodeJS.Timeout;
  waiters: Set<(s: TunnelSession | undefined) => void>;
}

export class MemoryRegistry implements Registry {
  private readonly pools = new Map<string, Pool>();

  /** Until then, requests for a name nobody holds wait for its agent (see MemoryRegistryInit). */
  private readonly startupUntil: number;

  /**
   * @param reconnectGraceMs how long an emptied name stays reserved for its agent.
   * @param startupGraceMs how long after start requests for an unknown name wait for its agent: after
   *   an edge restart its agents are still reconnecting, and their tunnels are not unknown. 0 = off.
   */
  constructor(
    private readonly reconnectGraceMs = 0,
    startupGraceMs = 0,
  ) {
    this.startupUntil = Date.now() + startupGraceMs;
  }

  async claim(name: string, session: TunnelSession, options: ClaimOptions): Promise<void> {
    let pool = this.pools.get(name);
    if (pool) {
      for (const m of pool.members) {
        if (!m.stopped) continue;
        pool.members.delete(m);
        pool.secrets.delete(m);
      }
      const sameOwner = pool.owner === options.owner;
      const candidate = options.resume ? [...pool.members].find((m) => m.id === options.resume) : undefined;
      const replacing = candidate && sameOwner && (options.owner !== '' || sameSecret(pool.secrets.get(candidate), options.resumeSecret)) ? candidate : undefined;
      const joinable = pool.provisional || (pool.members.size === 0 ? sameOwner || pool.graceUntil === undefined : sameOwner && options.owner !== '');
      if (!joinable && !replacing) {
        throw new NameTakenError(`tunnel name "${name}" is in use by another agent`);
      }
      replacing?.abort(new NameTakenError('replaced by its reconnected agent'));
      if (replacing) {
        pool.members.delete(replacing);
        pool.secrets.delete(replacing);
      }
    } else {
      pool = { owner: options.owner, members: new Set(), secrets: new Map(), waiters: new Set() };
      this.pools.set(name, pool);
    }
    pool.owner = options.owner;
    pool.provisional = false;
    clearTimeout(pool.graceTimer);
    pool.graceUntil = undefined;
    pool.members.add(session);
    if (options.secret) pool.secrets.set(session, options.secret);
    // Held requests may go at once: a session holds their exchanges until its Registered has left.
    const waiters = [...pool.waiters];
    pool.waiters.clear();
    for (const w of waiters) w(session);
  }

  async release(name: string, session: TunnelSession, options: ReleaseOptions): Promise<void> {
    const pool = this.pools.get(name);
    pool?.secrets.delete(session);
    if (!pool || !pool.members.delete(session) || pool.members.size > 0) return;
    if (!options.reconnecting || this.reconnectGraceMs <= 0) {
      this.drop(name, pool);
      return;
    }
    pool.graceUntil = Date.now() + this.reconnectGraceMs;
    pool.graceTimer = setTimeout(() => this.drop(name, pool), this.reconnectGraceMs);
    pool.graceTimer.unref();
  }

  private drop(name: string, pool: Pool): void {
    if (this.pools.get(name) !== pool || pool.members.size > 0) return;
    this.pools.delete(name);
    for (const w of pool.waiters) w(undefined);
    pool.waiters.clear();
  }

  /** While the edge is starting, a name nobody holds yet is held for the agent that may be reconnecting. */
  private provisionalPool(name: string): Pool | undefined {
    const left = this.startupUntil - Date.now();
    if (left <= 0) return undefined;
    const pool: Pool = { owner: '', members: new Set(), secrets: new Map(), waiters: new Set(), provisional: true, graceUntil: this.startupUntil };
    this.pools.set(name, pool);
    pool.graceTimer = setTimeout(() => this.drop(name, pool), left);
    pool.graceTimer.unref();
    return pool;
  }

  lookup(name: string): TunnelSession | undefined {
    const pool = this.pools.get(name);
    if (!pool) return undefined;
    let best: TunnelSession | undefined;
    let bestLoad = Infinity;
    for (const s of pool.members) {
      if (s.stopped || s.draining) continue;
      const load = s.load;
      if (load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    return best;
  }

  waitFor(name: string, timeoutMs: number): Promise<TunnelSession | undefined> {
    const pool = this.pools.get(name) ?? this.provisionalPool(name);
    if (!pool || (pool.graceUntil === undefined && pool.members.size === 0)) return Promise.resolve(undefined);
    const wait = Math.min(timeoutMs, (pool.graceUntil ?? Infinity) - Date.now());
    if (wait <= 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (s: TunnelSession | undefined): void => {
        clearTimeout(timer);
        pool.waiters.delete(done);
        resolve(s);
      };
      const timer = setTimeout(() => done(undefined), wait);
      pool.waiters.add(done);
    });
  }
}

/** Constant-time comparison of two secrets of any length (both hashed first). */
function sameSecret(expected: string | undefined, presented: string | undefined): boolean {
  if (!expected || !presented) return false;
  const digest = (v: string): Buffer => createHash('sha256').update(v, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}
