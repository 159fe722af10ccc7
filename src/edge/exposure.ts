import { formatHostPort, isLoopbackHost } from '../address.js';
import { UsageError } from '../errors.js';

/**
 * An edge without agent tokens is open: any agent that reaches its agent endpoints may register a
 * tunnel. So without tokens those listeners default to loopback, and listening anywhere else needs an
 * explicit `--open`.
 */

/** Default host of the agent-facing listeners (public, gRPC) when the setting names only a port. */
export function defaultListenHost(open: boolean): string {
  return open ? '127.0.0.1' : '0.0.0.0';
}

/** One agent-facing listener: the setting that names it and its host. */
export interface AgentListener {
  setting: string;
  host: string;
  port: number;
}

/** Throws UsageError (exit 2) when an open edge would accept agents beyond loopback without `--open`. */
export function checkOpenExposure(listeners: readonly AgentListener[], open: boolean, allowOpen: boolean): void {
  if (!open || allowOpen) return;
  const exposed = listeners.find((l) => !isLoopbackHost(l.host));
  if (!exposed) return;
  throw new UsageError(
    `${exposed.setting} ${formatHostPort(exposed.host, exposed.port)} is not a loopback address and this edge has no agent tokens, ` +
      'so any agent could register on it: add tokens (jetty token create) or pass --open',
  );
}
