import { randomBytes } from 'node:crypto';
import type { AgentSession } from '../actors/agent-session.js';
import type { Registry } from '../actors/registry.js';
import { EdgeUnavailableError, NameNotAllowedError, UnauthorizedError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { canonicalAddress } from '../address.js';
import { randomName } from '../tunnel-name.js';
import type { EdgeLimits } from './limits.js';
import type { EdgeMetrics } from './metrics.js';
import { allowedOf, TokenAuthority } from './tokens.js';

/**
 * Names refused by default (`reserved-names`): they look like the operator's own services under the
 * domain (www.DOMAIN, api.DOMAIN, mail.DOMAIN…). A token that lists one by its exact name may claim it.
 */
export const DEFAULT_RESERVED_NAMES: readonly string[] = [
  'www', 'admin', 'api', 'edge', 'mail', 'smtp', 'imap', 'pop', 'ftp', 'ns1', 'ns2', 'dns', 'mx',
  'autoconfig', 'autodiscover', 'login', 'auth', 'status', 'metrics', 'jetty',
];

/** Random names pickName() draws at most for one agent before it lets the registry claim decide. */
export const PICK_NAME_DRAWS = 5;

export interface AgentAdmissionInit {
  registry: Registry;
  tokens: TokenAuthority;
  metrics: EdgeMetrics;
  logger: Logger;
  /** maxAgents, maxAgentsPerToken, maxAgentsPerIp. */
  limits: Pick<EdgeLimits, 'maxAgents' | 'maxAgentsPerToken' | 'maxAgentsPerIp'>;
  /** Tunnel names no agent may claim unless its token names them exactly; default DEFAULT_RESERVED_NAMES. */
  reservedNames?: readonly string[];
  /**
   * Several edges (a shared registry): whether another edge holds a name, so that a random name is
   * drawn again instead of being refused by the claim. Absent: this edge alone (lookup tells).
   */
  heldElsewhere?: (key: string) => Promise<boolean>;
  /**
   * Several edges with forwarding: a drained edge hands its agents to the others, so a name whose
   * agent leaves during the drain stays held for it (reconnect grace, cluster-wide) like after a lost
   * connection: the agent takes it over on another edge, and requests meanwhile wait for it.
   */
  handsOver?: boolean;
}

/** What an agent presents with its Hello. */
export interface AdmitOptions {
  /** Its bearer token (gRPC metadata, WebSocket Authorization header). */
  token?: string;
  /** Hello.resume: the session it had before a reconnect. */
  resume?: string;
  /** Hello.resume_secret: the secret issued with that session. */
  resumeSecret?: string;
  /** Its address (the TCP peer), for the per-address cap. */
  peer?: string;
}

/** What the edge grants an admitted session. */
export interface Admitted {
  /** The token hash the session speaks for; '' on an open edge. */
  owner: string;
  /** Issued to the agent in Registered; only it can resume this session on an open edge. */
  resumeSecret: string;
}

/**
 * Who may register, shared by every transport: the token (constant-time), the names it covers, the
 * edge's capacity and drain state, then the registry claim. Owns the set of live sessions.
 */
export class AgentAdmission {
  /** Set on drain: no new agents. */
  draining = false;
  readonly sessions = new Set<AgentSession>();
  private readonly init: AgentAdmissionInit;
  private readonly reserved: ReadonlySet<string>;
  /** Sessions admitted or being admitted, per source address and per token hash. */
  private readonly perIp = new Counter();
  private readonly perToken = new Counter();
  /** Admissions between their checks and their registry claim. */
  private pending = 0;

  constructor(init: AgentAdmissionInit) {
    this.init = init;
    this.reserved = new Set(init.reservedNames ?? DEFAULT_RESERVED_NAMES);
  }

  /** The checks of admit(), synchronous; returns the owner (token hash, '' when open). */
  private check(session: AgentSession, token: string | undefined, address: string): string {
    const { tokens, metrics, limits } = this.init;
    let owner = '';
    if (this.draining) throw new EdgeUnavailableError('edge is draining', 'draining');
    if (this.sessions.size + this.pending >= limits.maxAgents) {
      metrics.limitRejections.inc({ limit: 'max_agents' });
      throw new EdgeUnavailableError(`edge has its maximum of ${limits.maxAgents} agents`, 'max_agents');
    }
    if (this.perIp.get(address) >= limits.maxAgentsPerIp) {
      metrics.limitRejections.inc({ limit: 'agents_per_ip' });
      throw new EdgeUnavailableError(`this address has its maximum of ${limits.maxAgentsPerIp} agents on this edge`, 'agents_per_ip');
    }
    let granted = false;
    if (!tokens.open) {
      const entry = tokens.authenticate(token);
      if (!entry) throw new UnauthorizedError(token ? 'token not recognised by this edge' : 'this edge requires a token (--token)');
      if (!TokenAuthority.mayClaim(entry, session.name)) {
        throw new NameNotAllowedError(`token may not claim "${session.name}" (allowed: ${allowedOf(entry, session.name)})`);
      }
      owner = entry.hash;
      granted = entry.names.includes(session.name);
    }
    if (this.reserved.has(session.name) && !granted) {
      throw new NameNotAllowedError(`tunnel name "${session.name}" is reserved on this edge`);
    }
    if (owner !== '' && this.perToken.get(owner) >= limits.maxAgentsPerToken) {
      metrics.limitRejections.inc({ limit: 'agents_per_token' });
      throw new EdgeUnavailableError(`this token has its maximum of ${limits.maxAgentsPerToken} agents on this edge`, 'agents_per_token');
    }
    return owner;
  }

  /**
   * Admits `session` or throws UnauthorizedError, NameNotAllowedError, NameTakenError or
   * EdgeUnavailableError. On success the session is registered and removed again when it closes.
   */
  async admit(session: AgentSession, options: AdmitOptions): Promise<Admitted> {
    const { registry, metrics } = this.init;
    const { token } = options;
    const address = canonicalAddress(options.peer ?? '');
    const resumeSecret = randomBytes(24).toString('base64url');
    let owner = '';
    let reserved = false;
    try {
      // Every check and the reservation run before the first await: concurrent Hellos cannot all pass.
      owner = this.check(session, token, address);
      this.perIp.add(address, 1);
      this.perToken.add(owner, 1);
      this.pending++;
      reserved = true;
      await registry.claim(session.name, session, { owner, resume: options.resume || undefined, resumeSecret: options.resumeSecret, secret: resumeSecret });
    } catch (err) {
      if (reserved) {
        this.perIp.add(address, -1);
        this.perToken.add(owner, -1);
      }
      metrics.registrations.inc({ result: (toError(err) as { code?: string }).code ?? 'ERR_INTERNAL' });
      throw err;
    } finally {
      if (reserved) this.pending--;
    }
    metrics.registrations.inc({ result: 'ok' });
    this.sessions.add(session);
    void session.closed.then(() => {
      this.sessions.delete(session);
      this.perIp.add(address, -1);
      this.perToken.add(owner, -1);
      // Hold the name for the agent's return (a lost connection, or a restart after SIGTERM), unless
      // the whole edge is going away and no other edge takes its agents.
      void registry.release(session.name, session, { reconnecting: !this.draining || this.init.handsOver === true });
      this.init.logger.info({ tunnel: session.name, transport: session.transport }, 'agent disconnected');
    });
    return { owner, resumeSecret };
  }

  /**
   * A random name for an agent that asked for none (an empty Hello.name), inside what its token may
   * claim: `dev-*` gives `dev-swift-otter-4821`, `*` or an open edge a bare random name, a token with
   * exact names only its first one. An unknown token gets a bare name: admit() refuses it anyway.
   * Throws NameNotAllowedError when a prefix leaves no room for a name in one DNS label.
   */
  pickName(token: string | undefined): string {
    const { tokens } = this.init;
    const patterns = (tokens.open ? undefined : tokens.authenticate(token))?.names ?? ['*'];
    const prefix = patterns.find((p) => p.endsWith('-*'));
    if (prefix === undefined && !patterns.includes('*')) return patterns[0];
    let name: string | undefined;
    // A name some agent holds (or that is reserved) is drawn again; the claim settles any race.
    for (let draw = 0; draw < PICK_NAME_DRAWS && (name === undefined || this.init.registry.lookup(name) || this.reserved.has(name)); draw++) {
      name = randomName(prefix?.slice(0, -1));
      if (name === undefined) throw new NameNotAllowedError(`no room for a name after "${prefix}": give the agent --name`);
    }
    return name!;
  }

  /**
   * pickName, drawn again (PICK_NAME_DRAWS in all) while another edge of the cluster holds the name:
   * lookup() sees only this edge's agents. The claim still settles a race.
   */
  async pickFreeName(token: string | undefined): Promise<string> {
    const { heldElsewhere } = this.init;
    let name = this.pickName(token);
    for (let draw = 1; heldElsewhere && draw < PICK_NAME_DRAWS && (await heldElsewhere(name)); draw++) name = this.pickName(token);
    return name;
  }

  /** The owner (token hash) a presented token speaks for; undefined on an open edge or for a bad token. */
  ownerOf(token: string | undefined): string | undefined {
    return this.init.tokens.open ? undefined : this.init.tokens.authenticate(token)?.hash;
  }

  /** Sessions per transport, for the gauge. */
  byTransport(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.sessions) out[s.transport] = (out[s.transport] ?? 0) + 1;
    return out;
  }
}

/** Counts per key; '' is never counted (an open edge's owner, an unknown address). */
class Counter {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return key === '' ? 0 : (this.counts.get(key) ?? 0);
  }

  add(key: string, delta: number): void {
    if (key === '') return;
    const n = this.get(key) + delta;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
}
