import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { EdgeUnavailableError, NameTakenError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AbortOptions } from '../wait.js';
import type { Lease, PeerForwarder, TunnelDirectory } from './cluster.js';
import { MemoryRegistry, type ClaimOptions, type Registry, type ReleaseOptions, type TunnelSession } from './registry.js';
import type { LeaseView, RedisLeases } from './redis-leases.js';

/** How often this edge renews all its leases (one script call), ms: a third of the lease TTL. */
export const RENEW_INTERVAL_MS = 5_000;
/**
 * A lease counts as lost locally this long before it can expire in Redis: the local deadline is the
 * send time of the last successful renewal + TTL − margin, so clock drift and a slow reply cannot let
 * two edges believe they hold it at once.
 */
export const LEASE_SAFETY_MARGIN_MS = 2_000;
/** How long locate() answers from its cache, ms; pub/sub hints drop an entry sooner. */
export const LOCATE_CACHE_TTL_MS = 2_000;
/**
 * Keys locate() keeps cached at most (the oldest go first): public clients choose the names they ask
 * for, so the cache of misses must not grow with them.
 */
export const LOCATE_CACHE_MAX_ENTRIES = 10_000;
/** A peer counts as seen (/readyz) for this long after its last hint or lease, ms. */
export const PEER_SEEN_MS = 60_000;
/** Peers remembered at most (seen, and their cached peer URLs): edge ids change with every restart (HOSTNAME-PID). */
export const MAX_PEERS_SEEN = 256;

/** Counters of the cluster registry, by result (the edge maps them onto its Prometheus metrics). */
export interface ClusterObserver {
  /** ok, taken (another owner), takeover (from another edge), unavailable (Redis down). */
  claim(result: string): void;
  /** ok or failed (one per batch). */
  renewal(result: string): void;
  /** fenced (another edge holds it now) or refused (could not claim it again after an outage). */
  loss(result: string): void;
}

export interface ClusterRegistryInit {
  leases: RedisLeases;
  logger: Logger;
  /** How long an emptied name stays held for its agent, ms (locally and in Redis). */
  reconnectGraceMs?: number;
  /** See MemoryRegistry. */
  startupGraceMs?: number;
  /** Opens exchanges on another edge; absent = requests for tunnels held elsewhere are not served here. */
  forwarder?: PeerForwarder;
  /** This edge's peer listener (`http(s)://host:port`), stored in its edge record; '' = none. */
  peerUrl?: string;
  renewIntervalMs?: number;
  safetyMarginMs?: number;
  /** Default LOCATE_CACHE_MAX_ENTRIES. */
  cacheMaxEntries?: number;
  observer?: ClusterObserver;
}

/** One key this edge holds in Redis, and the local sessions it covers. */
interface HeldLease {
  epoch: number;
  owner: string;
  /** Each session with the hash of its resume secret (to claim again after Redis lost the key). */
  members: Map<TunnelSession, string>;
  /** Local deadline: after it, the lease may have expired in Redis (see LEASE_SAFETY_MARGIN_MS). */
  deadline: number;
}

/** What /readyz shows of the cluster. */
export interface ClusterView {
  registry: 'ok' | 'unreachable';
  edgeId: string;
  leases: number;
  peers: string[];
}

const sha256 = (v: string | undefined): string => (v ? createHash('sha256').update(v, 'utf8').digest('hex') : '');

/**
 * The registry of an edge in a cluster: this edge's sessions in a MemoryRegistry (lookup stays local,
 * synchronous, zero Redis commands), each tunnel key leased in Redis (RedisLeases) so that the name
 * rules hold across edges, and a directory of the other edges' leases for forwarding.
 *
 * Redis down: held keys keep serving locally (nobody else can claim them while nobody reaches Redis),
 * new claims are refused with EdgeUnavailableError (agents back off and retry); on recovery a key that
 * expired meanwhile is claimed again, and one another edge holds now (newer epoch) is given up: its
 * sessions are aborted and their agents reconnect. heldEpoch() turns undefined past the local deadline
 * all the same, so no forwarded exchange is accepted under a lease that may be someone else's.
 * Teardown order (close): renewal timer stops → pending releases settle → every lease left is
 * released → edge record deleted → Redis clients quit.
 */
export class ClusterRegistry implements Registry, TunnelDirectory {
  readonly edgeId: string;
  private readonly init: ClusterRegistryInit;
  private readonly local: MemoryRegistry;
  private readonly leases: RedisLeases;
  private readonly held = new Map<string, HeldLease>();
  private readonly cache = new Map<string, { view: LeaseView; until: number }>();
  /** Reads of Redis under way, per key (at most one each). */
  private readonly reading = new Map<string, { view: Promise<LeaseView>; stale: boolean }>();
  private readonly peerUrls = new Map<string, { url: string | undefined; until: number }>();
  /** Emits a key when a hint (or a local session) may have changed where it is served. */
  private readonly wake = new EventEmitter();
  /** Other edges seen in hints and leases, with when (ms). */
  private readonly peersSeen = new Map<string, number>();
  private readonly pending = new Set<Promise<unknown>>();
  private forwarder: PeerForwarder | undefined;
  /** What the edge record holds (ClusterRegistryInit.peerUrl, or advertise()). */
  private advertised: string;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private renewAgain = false;
  /** The largest epoch seen: claims after Redis lost its data continue above it. */
  private maxEpoch = 0;
  /** The last renewal went through (false before the first). */
  private renewedOk = false;
  /** A renewal went through once: this edge has written its record and may take agents (/readyz). */
  private joinedOnce = false;
  private closing: Promise<void> | undefined;

  constructor(init: ClusterRegistryInit) {
    this.init = init;
    this.leases = init.leases;
    this.edgeId = init.leases.edgeId;
    this.forwarder = init.forwarder;
    this.advertised = init.peerUrl ?? '';
    this.local = new MemoryRegistry(init.reconnectGraceMs ?? 0, init.startupGraceMs ?? 0);
    this.wake.setMaxListeners(0);
    this.leases.on('hint', (edgeId, key) => this.onHint(edgeId, key));
    // The first renewal writes the edge record: at start, and at once after each reconnection.
    this.leases.on('ready', () => void this.renewNow());
    this.timer = setInterval(() => void this.renewNow(), init.renewIntervalMs ?? RENEW_INTERVAL_MS);
    this.timer.unref();
    if (this.leases.ready) void this.renewNow();
  }

  /**
   * Sets the peer URL the edge record advertises, once it is known (a peer listener bound to port 0
   * knows its port only after listening); renews at once so peers see it now.
   */
  advertise(peerUrl: string): void {
    this.advertised = peerUrl;
    void this.renewNow();
  }

  /** Sets the forwarder once it exists (it needs this directory to be built). */
  useForwarder(forwarder: PeerForwarder): void {
    this.forwarder = forwarder;
  }

  /** Redis answered a renewal once since start (false while it is unreachable at start-up). */
  get joined(): boolean {
    return this.joinedOnce;
  }

  /** Redis answered the last renewal: this edge is part of the cluster. */
  get reachable(): boolean {
    return this.renewedOk && this.leases.ready;
  }

  view(): ClusterView {
    this.prunePeers();
    return { registry: this.reachable ? 'ok' : 'unreachable', edgeId: this.edgeId, leases: this.held.size, peers: [...this.peersSeen.keys()].sort() };
  }

  /** Keys in the locate cache now (bounded by LOCATE_CACHE_MAX_ENTRIES). */
  get cachedKeys(): number {
    return this.cache.size;
  }

  /** Edge ids whose peer URL is cached now (bounded by MAX_PEERS_SEEN). */
  get cachedPeerUrls(): number {
    return this.peerUrls.size;
  }

  private sawPeer(edgeId: string): void {
    this.peersSeen.delete(edgeId);
    this.peersSeen.set(edgeId, Date.now());
    if (this.peersSeen.size > MAX_PEERS_SEEN) this.prunePeers();
  }

  /** Forgets peers not seen for PEER_SEEN_MS, then the oldest beyond MAX_PEERS_SEEN (the map is in order of sighting). */
  private prunePeers(): void {
    const before = Date.now() - PEER_SEEN_MS;
    for (const [id, at] of this.peersSeen) {
      if (at >= before && this.peersSeen.size <= MAX_PEERS_SEEN) break;
      this.peersSeen.delete(id);
    }
  }

  async claim(key: string, session: TunnelSession, options: ClaimOptions): Promise<void> {
    const { observer } = this.init;
    if (!this.leases.ready) {
      observer?.claim('unavailable');
      throw new EdgeUnavailableError('the shared registry (Redis) is unreachable: try again shortly', 'registry');
    }
    const secretHash = sha256(options.secret);
    const sentAt = Date.now();
    let got: Awaited<ReturnType<RedisLeases['claim']>>;
    try {
      got = await this.leases.claim(key, {
        owner: options.owner,
        sessionId: session.id,
        secretHash,
        resumeId: options.resume ?? '',
        resumeHash: sha256(options.resumeSecret),
        minEpoch: this.maxEpoch,
      });
    } catch (err) {
      observer?.claim('unavailable');
      this.init.logger.warn({ tunnel: key, err: toError(err).message }, 'claim refused: shared registry unreachable');
      throw new EdgeUnavailableError('the shared registry (Redis) is unreachable: try again shortly', 'registry');
    }
    if (!got) {
      observer?.claim('taken');
      throw new NameTakenError(`tunnel name "${key}" is in use by another agent`);
    }
    this.maxEpoch = Math.max(this.maxEpoch, got.epoch);
    try {
      await this.local.claim(key, session, options);
    } catch (err) {
      const lease = this.held.get(key);
      await this.leases.release(key, { sessionId: session.id, epoch: got.epoch, last: !lease || lease.members.size === 0, graceMs: 0 }).catch(() => false);
      throw err;
    }
    let lease = this.held.get(key);
    if (!lease || lease.epoch !== got.epoch) {
      // A new lease (or a new epoch: the old one was fenced and this is a fresh claim).
      lease = { epoch: got.epoch, owner: options.owner, members: new Map(lease?.members), deadline: 0 };
      this.held.set(key, lease);
    }
    lease.owner = options.owner;
    lease.members.set(session, secretHash);
    lease.deadline = Math.max(lease.deadline, sentAt + this.leases.ttlMs - this.margin);
    observer?.claim(got.fencedEdge ? 'takeover' : 'ok');
    if (got.fencedEdge) this.init.logger.info({ tunnel: key, from: got.fencedEdge, epoch: got.epoch }, 'tunnel taken over from another edge');
    this.track(this.leases.hint(key));
    // Requests here waiting for the name (a forwarder relocating it) take the local session now.
    this.wake.emit(key);
  }

  async release(key: string, session: TunnelSession, options: ReleaseOptions): Promise<void> {
    await this.local.release(key, session, options);
    const lease = this.held.get(key);
    if (!lease || !lease.members.delete(session)) return;
    const last = lease.members.size === 0;
    if (last) this.held.delete(key);
    const graceMs = options.reconnecting ? (this.init.reconnectGraceMs ?? 0) : 0;
    await this.track(
      this.leases
        .release(key, { sessionId: session.id, epoch: lease.epoch, last, graceMs })
        .then(() => this.leases.hint(key))
        .catch((err) => this.init.logger.warn({ tunnel: key, err: toError(err).message }, 'lease not released (it expires by itself)')),
    );
  }

  /** Local only: the hot path never touches Redis. */
  lookup(key: string): TunnelSession | undefined {
    return this.local.lookup(key);
  }

  /**
   * A session of `key`: a local one, else one that opens its exchanges on the edge holding the key
   * (with a forwarder), else a wait until the timeout for the local agent's return or a hint that
   * another edge took it.
   */
  async waitFor(key: string, timeoutMs: number): Promise<TunnelSession | undefined> {
    const here = this.local.lookup(key);
    if (here) return here;
    if (!this.forwarder) return this.local.waitFor(key, timeoutMs);
    return this.awaitSession(key, timeoutMs);
  }

  /**
   * After the owner under `failed` refused an exchange or could not be reached: a session of `key`
   * elsewhere, waiting up to `timeoutMs` for its agent to show up again (it is moving: told to
   * reconnect by a draining edge, or reconnecting after its edge died) as a local request waits for a
   * reconnecting agent. The lease under `failed` is never the answer; a local session is (the agent
   * came back to this very edge). Undefined at the deadline or when `signal` aborts.
   */
  async relocate(key: string, failed: Lease, timeoutMs: number, options: AbortOptions = {}): Promise<TunnelSession | undefined> {
    this.forget(key);
    if (!this.forwarder) return this.local.waitFor(key, timeoutMs);
    return this.awaitSession(key, timeoutMs, failed, options.signal);
  }

  /**
   * The wait behind waitFor and relocate. Every wake (a hint about `key`, a local claim or release)
   * makes it look again: local session first, then the other edges' leases. Without `failed` it gives
   * up as soon as nobody holds the name (no local pool, no grace elsewhere, no lease of this edge):
   * an unknown name answers at once.
   */
  private async awaitSession(key: string, timeoutMs: number, failed?: Lease, signal?: AbortSignal): Promise<TunnelSession | undefined> {
    const forwarder = this.forwarder!;
    const until = Date.now() + timeoutMs;
    let found: TunnelSession | undefined;
    let localOver = false;
    // Listening for the whole wait: a wake while Redis is being read is not missed.
    let woken = false;
    let wakeUp: (() => void) | undefined;
    const onWake = (): void => {
      woken = true;
      wakeUp?.();
    };
    this.wake.on(key, onWake);
    signal?.addEventListener('abort', onWake);
    try {
      void this.local.waitFor(key, timeoutMs).then((s) => {
        found = s;
        localOver = true;
        onWake();
      });
      for (;;) {
        woken = false;
        const here = found ?? this.local.lookup(key);
        if (here) return here;
        if (signal?.aborted) return undefined;
        const view = await this.remoteView(key);
        const leases = failed ? view.leases.filter((l) => l.edgeId !== failed.edgeId || l.epoch !== failed.epoch) : view.leases;
        if (leases.length > 0) return forwarder.sessionFor(pick(leases));
        const held = failed !== undefined || !localOver || this.held.has(key);
        const left = (held ? until : Math.min(until, Date.now() + view.graceLeftMs)) - Date.now();
        if (left <= 0) return this.local.lookup(key);
        if (woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeUp = undefined;
      }
    } finally {
      this.wake.off(key, onWake);
      signal?.removeEventListener('abort', onWake);
    }
  }

  /** The other edges' leases of `key`: cache first, Redis on a miss; empty when Redis cannot answer. */
  async locate(key: string): Promise<Lease[]> {
    return (await this.remoteView(key)).leases;
  }

  /** Another edge holds `key`, or it is held for an agent that left another edge (grace). False when Redis cannot tell. */
  async heldElsewhere(key: string): Promise<boolean> {
    const view = await this.remoteView(key);
    return view.leases.length > 0 || view.graceLeftMs > 0;
  }

  private remoteView(key: string): Promise<LeaseView> {
    const hit = this.cache.get(key);
    if (hit && (hit.until > Date.now() || !this.leases.ready)) return Promise.resolve(hit.view);
    // Requests arriving together for one key (a cache entry just expired) share one read.
    const running = this.reading.get(key);
    if (running) return running.view;
    const read: { view: Promise<LeaseView>; stale: boolean } = { view: Promise.resolve({ leases: [], graceLeftMs: 0 }), stale: false };
    read.view = this.readView(key, () => read.stale);
    this.reading.set(key, read);
    void read.view.finally(() => {
      if (this.reading.get(key) === read) this.reading.delete(key);
    });
    return read.view;
  }

  /** One read of `key` from Redis; cached unless a hint about it arrived meanwhile (`stale()`). */
  private async readView(key: string, stale: () => boolean): Promise<LeaseView> {
    try {
      const all = await this.leases.locate(key);
      const view = { leases: all.leases.filter((l) => l.edgeId !== this.edgeId), graceLeftMs: all.graceLeftMs };
      for (const l of all.leases) {
        this.maxEpoch = Math.max(this.maxEpoch, l.epoch);
        if (l.edgeId !== this.edgeId) this.sawPeer(l.edgeId);
      }
      if (stale()) return view;
      this.cache.delete(key);
      this.cache.set(key, { view, until: Date.now() + LOCATE_CACHE_TTL_MS });
      // The oldest entry goes (a Map iterates in insertion order).
      if (this.cache.size > (this.init.cacheMaxEntries ?? LOCATE_CACHE_MAX_ENTRIES)) this.cache.delete(this.cache.keys().next().value!);
      return view;
    } catch {
      // Redis cannot tell (down, frozen, timed out): the last view read, however old, is a better guess
      // than "nobody": the peer link to its owner does not need Redis, so held tunnels stay reachable
      // through every edge during an outage. A wrong guess costs one MISDIRECTED and one more read.
      // It is kept another cache period, so only one request per period waits out a frozen Redis.
      const last = this.cache.get(key);
      if (!last) return { leases: [], graceLeftMs: 0 };
      last.until = Date.now() + LOCATE_CACHE_TTL_MS;
      return last.view;
    }
  }

  forget(key: string): void {
    this.cache.delete(key);
    const running = this.reading.get(key);
    if (running) {
      // A read already under way may predate what made the caller forget: it is not cached, and the next caller reads again.
      running.stale = true;
      this.reading.delete(key);
    }
  }

  async peerUrl(edgeId: string): Promise<string | undefined> {
    const hit = this.peerUrls.get(edgeId);
    if (hit && hit.until > Date.now()) return hit.url;
    try {
      const url = (await this.leases.peerUrl(edgeId)) || undefined;
      this.peerUrls.delete(edgeId);
      this.peerUrls.set(edgeId, { url, until: Date.now() + LOCATE_CACHE_TTL_MS });
      // Edge ids come from Redis (a new one per edge restart, or planted): the oldest entry goes.
      if (this.peerUrls.size > MAX_PEERS_SEEN) this.peerUrls.delete(this.peerUrls.keys().next().value!);
      return url;
    } catch {
      return undefined;
    }
  }

  heldEpoch(key: string): number | undefined {
    const lease = this.held.get(key);
    return lease && Date.now() < lease.deadline ? lease.epoch : undefined;
  }

  private get margin(): number {
    return this.init.safetyMarginMs ?? LEASE_SAFETY_MARGIN_MS;
  }

  private onHint(edgeId: string, key: string): void {
    this.forget(key);
    if (edgeId !== this.edgeId) {
      this.sawPeer(edgeId);
      this.peerUrls.delete(edgeId);
      // Another edge changed a key this edge holds: it may have taken it over. Check now, not in 5 s.
      if (this.held.has(key)) void this.renewNow();
    }
    this.wake.emit(key);
  }

  /** One renewal of every lease (coalesced: a call while one runs makes one more after it). */
  renewNow(): Promise<void> {
    if (this.closing) return Promise.resolve();
    if (this.renewing) {
      this.renewAgain = true;
      return this.renewing;
    }
    this.renewing = (async () => {
      try {
        do {
          this.renewAgain = false;
          await this.renewOnce();
        } while (this.renewAgain && !this.closing);
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    const batch = [...this.held].map(([key, l]) => ({ key, epoch: l.epoch }));
    const sentAt = Date.now();
    let statuses;
    try {
      statuses = await this.leases.renew(batch, this.advertised);
    } catch (err) {
      if (this.renewedOk) this.init.logger.warn({ err: toError(err).message, leases: batch.length }, 'lease renewal failed: held tunnels keep serving');
      this.renewedOk = false;
      this.init.observer?.renewal('failed');
      return;
    }
    this.renewedOk = true;
    this.joinedOnce = true;
    this.init.observer?.renewal('ok');
    for (let i = 0; i < batch.length; i++) {
      const { key, epoch } = batch[i];
      const lease = this.held.get(key);
      // Claimed again or released while the renewal ran: its answer is about another lease.
      if (!lease || lease.epoch !== epoch) continue;
      if (statuses[i] === 'ok') lease.deadline = sentAt + this.leases.ttlMs - this.margin;
      else if (statuses[i] === 'fenced') this.lose(key, lease, 'fenced', 'another edge holds it now');
      else await this.reclaim(key, lease);
    }
  }

  /** The key expired in Redis (an outage, or Redis lost its data) and nobody else holds it: claim it again. */
  private async reclaim(key: string, lease: HeldLease): Promise<void> {
    const sentAt = Date.now();
    for (const [session, secretHash] of lease.members) {
      let got;
      try {
        got = await this.leases.claim(key, { owner: lease.owner, sessionId: session.id, secretHash, resumeId: '', resumeHash: '', minEpoch: this.maxEpoch });
      } catch {
        return; // Redis went away again: the next renewal tries again.
      }
      if (this.held.get(key) !== lease) return;
      if (!got) return this.lose(key, lease, 'refused', 'another agent claimed it while the registry was unreachable');
      this.maxEpoch = Math.max(this.maxEpoch, got.epoch);
      lease.epoch = got.epoch;
    }
    lease.deadline = sentAt + this.leases.ttlMs - this.margin;
    this.init.logger.info({ tunnel: key, epoch: lease.epoch }, 'lease claimed again after the registry came back');
    this.track(this.leases.hint(key));
  }

  /** This edge no longer holds `key`: its sessions of it end (their agents reconnect and claim again). */
  private lose(key: string, lease: HeldLease, result: string, why: string): void {
    this.held.delete(key);
    this.init.observer?.loss(result);
    this.init.logger.warn({ tunnel: key, epoch: lease.epoch, sessions: lease.members.size }, `lease lost: ${why}`);
    for (const session of lease.members.keys()) {
      void this.local.release(key, session, { reconnecting: false });
      // A draining session takes no new exchange and ends by itself once its last one is done: its
      // agent, told to go, is what took the name over elsewhere. Aborting it would cut those exchanges.
      if (!session.draining) session.abort(new NameTakenError(`lease of "${key}" lost: ${why}`));
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    const quiet = p.catch(() => undefined);
    this.pending.add(quiet);
    void quiet.finally(() => this.pending.delete(quiet));
    return p;
  }

  /** Releases every lease, deletes the edge record, quits Redis. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      await this.renewing;
      await Promise.all(this.pending);
      const left = [...this.held];
      this.held.clear();
      await Promise.all(
        left.flatMap(([key, lease]) =>
          [...lease.members.keys()].map((s, i, all) =>
            this.leases.release(key, { sessionId: s.id, epoch: lease.epoch, last: i === all.length - 1, graceMs: 0 }).then(() => this.leases.hint(key)).catch(() => undefined),
          ),
        ),
      );
      await this.leases.forgetEdge().catch(() => undefined);
      await this.leases.close();
    })();
    return this.closing;
  }
}

/** One of several leases (a pool spanning edges), at random: the load spreads over the edges. */
function pick(leases: Lease[]): Lease {
  return leases[Math.floor(Math.random() * leases.length)];
}
