import { randomUUID } from 'node:crypto';
import { AgentSession } from '../actors/agent-session.js';
import type { ControlChannel } from '../actors/control-channel.js';
import { TUNNEL_KIND_NAMES, TunnelKind, type AgentMessage } from '../codec/tunnel-codec.js';
import { AgentUnavailableError, BadHelloError, NameNotAllowedError, NameTakenError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isValidTunnelName } from '../tunnel-name.js';
import type { Admitted, AgentAdmission } from './agent-admission.js';
import type { PortReservation } from './port-tunnels.js';

/** How long a new control channel may take to send Hello. */
export const HELLO_TIMEOUT_MS = 10_000;

type Hello = NonNullable<AgentMessage['hello']>;

/** What every transport's sessions share: admission, the public URL, session settings. */
export interface EdgeSessionProtocolInit {
  /** pickFreeName (several edges) is preferred to pickName when given. */
  admission: Pick<AgentAdmission, 'admit' | 'pickName'> & Partial<Pick<AgentAdmission, 'pickFreeName'>>;
  logger: Logger;
  /** The public URL of a tunnel name. */
  publicUrl: (name: string) => string;
  /** Liveness ping interval, in ms (told to the agent in Registered). */
  pingIntervalMs: number;
  /** Drain: how long in-flight exchanges get (told to agents), in ms. */
  gracePeriodMs: number;
  /** Per-agent exchange cap; see AgentSession. */
  maxExchanges?: number;
  openTimeoutMs?: number;
  /** Round-trip time of each answered ping, in ms. */
  onPingRtt?: (ms: number) => void;
  /** Wait for Hello, in ms; default HELLO_TIMEOUT_MS. */
  helloTimeoutMs?: number;
  /**
   * TCP/UDP tunnels: sets a public port aside for a Hello of that kind (`requested`, or a free one);
   * throws the refusal. Absent: the edge serves HTTP tunnels only.
   */
  reservePort?: (kind: 'tcp' | 'udp', requested: number | undefined) => Promise<PortReservation>;
  /** The public URL of a TCP/UDP tunnel's port (tcp://DOMAIN:PORT). */
  portUrl?: (kind: 'tcp' | 'udp', port: number) => string;
}

/** What one transport adds to a handshake. */
export interface AcceptOptions {
  /** The agent's bearer token, as the transport carries it. */
  token?: string;
  /** Transport-specific checks of the Hello (throws BadHelloError), e.g. the WebSocket window. */
  checkHello?: (hello: Hello) => void;
  /** The edge's receive window, for transports with credit (told in Registered). */
  window?: number;
  /** Runs once the session is admitted, before Registered (gRPC: raise windows, accept ForwardHTTP). */
  onAdmitted?: (session: AgentSession, admitted: Admitted) => void;
}

/**
 * The edge's half of the session protocol, written once for every transport. A control channel is
 * awaiting-hello until its first message: a Hello in time with a valid name, or it is refused with a
 * BadHelloError. Then admission (token, names, limits, registry claim): a refusal closes the channel
 * with its error (the adapter maps it through session-errors.ts). Admitted, the AgentSession actor
 * takes the channel over: Registered, then registered → draining → closed (agent-session.ts).
 */
export class EdgeSessionProtocol {
  constructor(private readonly init: EdgeSessionProtocolInit) {}

  /** Runs the handshake on `channel`; resolves with the session, or undefined when it was refused. */
  async accept(channel: ControlChannel, options: AcceptOptions = {}): Promise<AgentSession | undefined> {
    let hello: Hello;
    try {
      hello = await this.readHello(channel);
      // An empty name asks the edge to pick one (inside the token's scope, at admission).
      if (hello.name !== '' && !isValidTunnelName(hello.name)) {
        // The name is not quoted back: it is the peer's text (the agent knows what it sent).
        throw new BadHelloError('invalid tunnel name: use 1-63 lower-case letters, digits and inner hyphens');
      }
      options.checkHello?.(hello);
    } catch (err) {
      channel.close(err instanceof BadHelloError ? err : new BadHelloError('no valid Hello', { cause: err }));
      return undefined;
    }
    return this.admit(channel, hello, options);
  }

  private async admit(channel: ControlChannel, hello: Hello, options: AcceptOptions): Promise<AgentSession | undefined> {
    const { init } = this;
    const kind = TUNNEL_KIND_NAMES[hello.tunnelKind ?? TunnelKind.HTTP];
    let name = hello.name;
    try {
      // An HTTP agent without a name gets one inside its token's scope; a TCP/UDP tunnel is its port.
      if (name === '' && kind === 'http') name = init.admission.pickFreeName ? await init.admission.pickFreeName(options.token) : init.admission.pickName(options.token);
    } catch (err) {
      init.logger.info({ peer: channel.peer, reason: toError(err).message }, 'agent registration refused');
      channel.close(toError(err));
      return undefined;
    }
    let port: PortReservation | undefined;
    let session: AgentSession | undefined;
    let admitted: Admitted;
    try {
      if (kind !== 'http') {
        if (!init.reservePort) throw new NameNotAllowedError(`this edge serves no ${kind} tunnels`);
        port = await init.reservePort(kind, hello.remotePort || undefined);
      }
      // A TCP/UDP tunnel is registered under its port's key (tcp:PORT); its name is only for the agent's logs.
      session = new AgentSession({ id: randomUUID(), name: port?.key ?? name, channel, logger: init.logger, ...this.sessionSettings() });
      admitted = await init.admission.admit(session, { token: options.token, resume: hello.resume || undefined, resumeSecret: hello.resumeSecret || undefined, peer: channel.peer });
    } catch (err) {
      port?.cancel();
      const refusal = port && err instanceof NameTakenError ? new NameTakenError(`port ${port.port} is in use by another agent`, { cause: err }) : toError(err);
      init.logger.info({ tunnel: name, kind, port: port?.port, peer: channel.peer, reason: refusal.message }, 'agent registration refused');
      // The refusal goes out first: the session's own end would close the channel as going away.
      channel.close(refusal);
      session?.abort(refusal);
      return undefined;
    }
    if (channel.isClosed) {
      // The connection went away while admission ran: nobody will ever close this session.
      session.abort(new AgentUnavailableError('agent connection closed during registration'));
      port?.cancel();
      return undefined;
    }
    port?.commit(session);
    options.onAdmitted?.(session, admitted);
    const url = port ? init.portUrl!(kind as 'tcp' | 'udp', port.port) : init.publicUrl(name);
    const where = port ? { port: port.port } : {};
    session.start({ name, url, sessionId: session.id, window: options.window, pingIntervalMs: init.pingIntervalMs, resumeSecret: admitted.resumeSecret, foldedChunks: true, ...where });
    init.logger.info({ tunnel: name, kind, ...where, peer: channel.peer, transport: session.transport }, 'agent registered');
    return session;
  }

  private sessionSettings(): Partial<ConstructorParameters<typeof AgentSession>[0]> {
    const { maxExchanges, openTimeoutMs, pingIntervalMs, gracePeriodMs, onPingRtt } = this.init;
    return { maxExchanges, openTimeoutMs, pingIntervalMs, gracePeriodMs, onPingRtt };
  }

  /** The first message, which must be a Hello, within the Hello timeout. */
  private async readHello(channel: ControlChannel): Promise<Hello> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BadHelloError('no Hello in time')), this.init.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
    });
    try {
      const first = await Promise.race([channel.messages.next(), late]);
      if (first.done || !first.value.hello) throw new BadHelloError('the first message is not a Hello');
      return first.value.hello;
    } finally {
      clearTimeout(timer);
    }
  }
}
