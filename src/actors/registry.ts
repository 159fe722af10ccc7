import { NameTakenError } from '../errors.js';
import type { AgentSession } from './agent-session.js';

/**
 * Which session serves which tunnel name. The in-memory registry is the embedded default; a shared
 * one (several edges behind a load balancer) implements the same interface.
 */
export interface Registry {
  /** Gives `name` to `session`; throws NameTakenError when another live session holds it. */
  claim(name: string, session: AgentSession): Promise<void>;
  /** Frees `name` if `session` still holds it. */
  release(name: string, session: AgentSession): Promise<void>;
  /** The session serving `name` on this edge. */
  lookup(name: string): AgentSession | undefined;
  /** Every live session (for stats and drain). */
  sessions(): Iterable<AgentSession>;
}

export class MemoryRegistry implements Registry {
  private readonly byName = new Map<string, AgentSession>();

  async claim(name: string, session: AgentSession): Promise<void> {
    const holder = this.byName.get(name);
    if (holder && holder !== session && !holder.stopped) {
      throw new NameTakenError(`tunnel name "${name}" is in use by another agent`);
    }
    this.byName.set(name, session);
  }

  async release(name: string, session: AgentSession): Promise<void> {
    if (this.byName.get(name) === session) this.byName.delete(name);
  }

  lookup(name: string): AgentSession | undefined {
    const s = this.byName.get(name);
    return s && !s.stopped ? s : undefined;
  }

  sessions(): Iterable<AgentSession> {
    return this.byName.values();
  }
}
