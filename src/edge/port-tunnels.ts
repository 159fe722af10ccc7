import { EventEmitter } from 'node:events';
import type { Registry, TunnelSession } from '../actors/registry.js';
import { waitUntil, type WaitOptions } from '../wait.js';
import type { Logger } from '../logger.js';
import type { EdgeMetrics } from './metrics.js';
import { NameNotAllowedError, NameTakenError, toError } from '../errors.js';
import { formatPortRanges, inPortRanges, portsOf, type PortRange } from './port-ranges.js';

/** Ports tried, when the edge picks one, before it gives up (ports bound by other programs are skipped). */
export const MAX_PORT_PICK_ATTEMPTS = 32;

/** What every port listener (TCP or UDP) is built from: where it listens and where it finds its tunnel. */
export interface PortListenerInit {
  host: string;
  port: number;
  /** The tunnel's registry key (`tcp:PORT`, `udp:PORT`). */
  key: string;
  registry: Registry;
  logger: Logger;
  metrics: EdgeMetrics;
  /** How long a connection or flow waits for a reconnecting agent, ms. */
  reconnectGraceMs: number;
}

/** One public port's listener (TCP server or UDP socket), as the port pool drives it. */
export interface PortListener {
  /** Connections or flows open now. */
  readonly connections: number;
  /** Bytes held in its buffers now. */
  bufferedBytes(): number;
  /** Drain: accept nothing new. */
  stopAccepting(): void;
  /** Stops and resets everything it carries. Idempotent. */
  abort(): void;
  /** `idle` each time its last connection or flow ends. */
  on(event: 'idle', listener: () => void): unknown;
}

/** A port set aside for one registration until the registry claim settles. */
export interface PortReservation {
  readonly port: number;
  /** The registry key of the tunnel (`tcp:PORT`): never a DNS label, so the HTTP router never serves it. */
  readonly key: string;
  /** The claim succeeded: the port is `session`'s, and held for its return when it drops. */
  commit(session: TunnelSession): void;
  /** The claim failed: a listener opened for it is closed again. */
  cancel(): void;
}

export interface PortTunnelsInit {
  kind: 'tcp' | 'udp';
  /** `tcp-ports` / `udp-ports`; empty = this kind is off. */
  ranges: readonly PortRange[];
  registry: Registry;
  /** How long a dropped agent's port stays held (its listener open, new traffic waiting), ms. */
  reconnectGraceMs: number;
  /** Opens the listener of `port` (with its registry key); rejects when the port cannot be had. */
  open: (port: number, key: string) => Promise<PortListener>;
  /**
   * Several edges (a shared registry): whether another edge holds the key (`tcp:PORT`), so that the
   * edge does not pick, for a new agent, a port the cluster will refuse. Absent: this edge alone.
   */
  heldElsewhere?: (key: string) => Promise<boolean>;
}

interface Lease {
  listener: PortListener;
  graceTimer?: NodeJS.Timeout;
}

/**
 * The public ports of one kind of tunnel: which are leased (a listener open, a registry entry
 * `tcp:PORT`), which are being claimed, and which are free. A port outlives its session by
 * `reconnectGraceMs`, so a reconnecting agent (which asks for its port again) gets it back and
 * connections made meanwhile wait for it. Ownership of a leased port (same token, or the resume
 * secret on an open edge) is the registry's decision, as for names.
 */
export class PortTunnels extends EventEmitter<{ idle: [] }> {
  private readonly init: PortTunnelsInit;
  private readonly leases = new Map<number, Lease>();
  /**
   * Several edges: a listener on every port of the ranges, open from the start whoever holds the port
   * (listenAll). A connection to a port another edge holds is forwarded there by its listener (the
   * cluster registry gives it a session on that edge); one this edge holds is served here.
   */
  private readonly standing = new Map<number, PortListener>();
  private readonly pending = new Set<number>();
  private stopped = false;

  constructor(init: PortTunnelsInit) {
    super();
    this.init = init;
  }

  /** Resolves true once no connection or flow is open on any port (false at `timeoutMs`). */
  idle(options: WaitOptions = {}): Promise<boolean> {
    return waitUntil(this, 'idle', () => this.connections === 0, options);
  }

  get kind(): 'tcp' | 'udp' {
    return this.init.kind;
  }

  /** Every open listener once: the leased ones and the standing ones. */
  private openListeners(): Set<PortListener> {
    const all = new Set(this.standing.values());
    for (const l of this.leases.values()) all.add(l.listener);
    return all;
  }

  /** Connections (or flows) open on every port. */
  get connections(): number {
    let n = 0;
    for (const l of this.openListeners()) n += l.connections;
    return n;
  }

  bufferedBytes(): number {
    let n = 0;
    for (const l of this.openListeners()) n += l.bufferedBytes();
    return n;
  }

  /**
   * Several edges: opens a standing listener on every port of the ranges, so that clients may reach
   * any edge on any port (a load balancer in front spreads them). A port another program holds is
   * skipped (returned, for the caller to log): this edge cannot serve it, the others can.
   */
  async listenAll(): Promise<number[]> {
    const skipped: number[] = [];
    for (const port of portsOf(this.init.ranges)) {
      if (this.standing.has(port) || this.leases.has(port)) continue;
      try {
        const listener = await this.init.open(port, this.key(port));
        listener.on('idle', () => this.emitIfIdle());
        this.standing.set(port, listener);
      } catch {
        skipped.push(port);
      }
    }
    return skipped;
  }

  private emitIfIdle(): void {
    if (this.connections === 0) this.emit('idle');
  }

  /**
   * Sets a port aside: `requested`, or a free one of the ranges. Throws NameNotAllowedError (kind off,
   * port outside the ranges) or NameTakenError (port claimed now, bound by another program, none left).
   */
  async reserve(requested: number | undefined): Promise<PortReservation> {
    const { kind, ranges } = this.init;
    const setting = `${kind}-ports`;
    if (ranges.length === 0 || this.stopped) throw new NameNotAllowedError(`this edge serves no ${kind} tunnels (${setting} is empty)`);
    if (requested !== undefined) {
      if (!inPortRanges(requested, ranges)) throw new NameNotAllowedError(`port ${requested} is outside this edge's ${setting} (${formatPortRanges(ranges)})`);
      if (this.pending.has(requested)) throw new NameTakenError(`port ${requested} is being claimed by another agent`);
      // A leased port: the registry claim decides (its own agent back, or another owner refused).
      if (this.leases.has(requested)) return this.reservation(requested, undefined);
      return this.reservation(requested, this.standing.get(requested) ?? (await this.bind(requested)));
    }
    let attempts = 0;
    for (const port of portsOf(ranges)) {
      if (this.leases.has(port) || this.pending.has(port)) continue;
      // Another edge's port is skipped without counting an attempt: nothing was bound.
      if (this.init.heldElsewhere && ((await this.init.heldElsewhere(this.key(port))) || this.leases.has(port) || this.pending.has(port))) continue;
      try {
        return this.reservation(port, this.standing.get(port) ?? (await this.bind(port)));
      } catch (err) {
        if (!(err instanceof NameTakenError) || ++attempts >= MAX_PORT_PICK_ATTEMPTS) throw err;
      }
    }
    throw new NameTakenError(`no free port left in this edge's ${setting} (${formatPortRanges(ranges)})`);
  }

  /** Opens the listener of `port`, holding the port as pending meanwhile. */
  private async bind(port: number): Promise<PortListener> {
    this.pending.add(port);
    try {
      return await this.init.open(port, this.key(port));
    } catch (err) {
      this.pending.delete(port);
      throw new NameTakenError(`port ${port} cannot be opened on the edge host (${(toError(err) as { code?: string }).code ?? toError(err).message})`, { cause: err });
    }
  }

  private key(port: number): string {
    return `${this.init.kind}:${port}`;
  }

  private reservation(port: number, fresh: PortListener | undefined): PortReservation {
    this.pending.add(port);
    let settled = false;
    return {
      port,
      key: this.key(port),
      commit: (session) => {
        if (settled) return;
        settled = true;
        this.pending.delete(port);
        let lease = this.leases.get(port);
        if (!lease) {
          lease = { listener: fresh! };
          this.leases.set(port, lease);
          // A standing listener reports its idle already.
          if (this.standing.get(port) !== fresh) lease.listener.on('idle', () => this.emitIfIdle());
        } else if (fresh && fresh !== lease.listener) this.close(port, fresh);
        clearTimeout(lease.graceTimer);
        lease.graceTimer = undefined;
        void session.closed.then(() => this.onSessionClosed(port));
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        this.pending.delete(port);
        if (fresh) this.close(port, fresh);
      },
    };
  }

  /** A session of `port` ended: unless another serves it, hold the port for the grace period, then free it. */
  private onSessionClosed(port: number): void {
    const lease = this.leases.get(port);
    if (!lease || this.init.registry.lookup(this.key(port)) || lease.graceTimer) return;
    const free = (): void => {
      if (this.leases.get(port) !== lease || this.init.registry.lookup(this.key(port))) return;
      this.leases.delete(port);
      this.close(port, lease.listener);
    };
    if (this.stopped || this.init.reconnectGraceMs <= 0) return free();
    lease.graceTimer = setTimeout(() => {
      lease.graceTimer = undefined;
      free();
    }, this.init.reconnectGraceMs);
    lease.graceTimer.unref();
  }

  /** Closes `listener` of `port`, unless it is the port's standing listener (it stays open for the cluster). */
  private close(port: number, listener: PortListener): void {
    if (this.standing.get(port) !== listener) listener.abort();
  }

  /** Drain: every listener stops accepting; open connections go on. No new port is reserved. */
  stopAccepting(): void {
    this.stopped = true;
    for (const l of this.openListeners()) l.stopAccepting();
  }

  /** Closes every listener and resets what they carry. */
  abort(): void {
    this.stopped = true;
    for (const [port, l] of this.leases) {
      clearTimeout(l.graceTimer);
      l.listener.abort();
      this.leases.delete(port);
    }
    for (const l of this.standing.values()) l.abort();
    this.standing.clear();
  }
}
