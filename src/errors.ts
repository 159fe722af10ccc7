/**
 * Jetty's error taxonomy: one class per failure a caller can act on, each with a stable `code`.
 * Errors know nothing of HTTP, gRPC or WebSocket; each boundary maps them (see edge/error-pages.ts).
 */
export class JettyError extends Error {
  readonly code: string = 'ERR_JETTY';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** A frame could not be decoded or breaks the protocol's rules. */
export class ProtocolError extends JettyError {
  override readonly code = 'ERR_PROTOCOL';
}

/** A frame is larger than the configured limit. */
export class FrameTooLargeError extends JettyError {
  override readonly code = 'ERR_FRAME_TOO_LARGE';
}

/** No agent holds the requested tunnel name. */
export class TunnelNotFoundError extends JettyError {
  override readonly code = 'ERR_TUNNEL_NOT_FOUND';
}

/** The agent went away, refused the exchange or could not reach its origin. */
export class AgentUnavailableError extends JettyError {
  override readonly code = 'ERR_AGENT_UNAVAILABLE';
}

/** The agent did not take the exchange in time. */
export class AgentTimeoutError extends JettyError {
  override readonly code = 'ERR_AGENT_TIMEOUT';
}

/** The agent already has as many exchanges in flight as it may. */
export class AgentBusyError extends JettyError {
  override readonly code = 'ERR_AGENT_BUSY';
}

/** The public request is malformed or ambiguous (smuggling-shaped). */
export class BadRequestError extends JettyError {
  override readonly code = 'ERR_BAD_REQUEST';
}

/** The exchange was reset by the peer; `resetCode` is the wire ResetCode. */
export class ExchangeResetError extends JettyError {
  override readonly code = 'ERR_EXCHANGE_RESET';
  constructor(
    message: string,
    readonly resetCode: number,
    options?: { cause?: unknown; peerReason?: string },
  ) {
    super(message, options);
    this.peerReason = options?.peerReason;
  }
  /**
   * The peer's own words for the reset (bounded), for the log line beside the request id only: never
   * put in a message, a close reason or a public page.
   */
  readonly peerReason: string | undefined;
}

/** A draining agent session finished its last exchange and ended (the agent may go). */
export class SessionDrainedError extends JettyError {
  override readonly code = 'ERR_SESSION_DRAINED';
}

/** The transport under an exchange closed before the exchange finished. */
export class TransportClosedError extends JettyError {
  override readonly code = 'ERR_TRANSPORT_CLOSED';
  /** The WebSocket close code the other end closed with (1001 going away: a peer edge done draining). */
  readonly closeCode: number | undefined;
  constructor(message: string, options?: { cause?: unknown; closeCode?: number }) {
    super(message, options);
    this.closeCode = options?.closeCode;
  }
}

/**
 * A handler of one agent session threw (a bug, or input nobody foresaw): that session is closed and
 * the process goes on serving the others.
 */
export class SessionFaultError extends JettyError {
  override readonly code = 'ERR_SESSION_FAULT';
}

/** A mailbox is full (bounded) or its actor stopped. */
export class MailboxFullError extends JettyError {
  override readonly code = 'ERR_MAILBOX_FULL';
}

export class ActorStoppedError extends JettyError {
  override readonly code = 'ERR_ACTOR_STOPPED';
}

/** The requested tunnel name is held by another live agent. */
export class NameTakenError extends JettyError {
  override readonly code = 'ERR_NAME_TAKEN';
}

/** The agent presented no token or a wrong one. */
export class UnauthorizedError extends JettyError {
  override readonly code = 'ERR_UNAUTHORIZED';
}

/** An agent's Hello is missing, late, malformed or names an invalid tunnel (the agent cannot retry as is). */
export class BadHelloError extends JettyError {
  override readonly code = 'ERR_BAD_HELLO';
}

/** The agent's token does not cover the tunnel name it asked for. */
export class NameNotAllowedError extends JettyError {
  override readonly code = 'ERR_NAME_NOT_ALLOWED';
}

/** A limit refused the request; `retryAfterS` tells the client when to try again, if known. */
export class LimitError extends JettyError {
  override readonly code: string = 'ERR_LIMIT';
  constructor(
    message: string,
    /** Which limit, for the rejections metric. */
    readonly limit: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** Per-tunnel request rate or concurrency exceeded (429). */
export class TunnelLimitError extends LimitError {
  override readonly code = 'ERR_TUNNEL_LIMIT';
}

/** One client address holds as many public connections or exchanges as it may (429). */
export class ClientLimitError extends LimitError {
  override readonly code = 'ERR_CLIENT_LIMIT';
}

/** Request head too large or too many header lines (431). */
export class HeadersTooLargeError extends LimitError {
  override readonly code = 'ERR_HEADERS_TOO_LARGE';
}

/** The edge is draining or at its agent limit (503). */
export class EdgeUnavailableError extends LimitError {
  override readonly code = 'ERR_EDGE_UNAVAILABLE';
}

/** The peer opened an exchange of a kind this side does not serve (only `http` is, so far). */
export class UnsupportedExchangeKindError extends JettyError {
  override readonly code = 'ERR_EXCHANGE_KIND';
}

/** An exchange passed its idle timeout with no bytes either way. */
export class IdleTimeoutError extends JettyError {
  override readonly code = 'ERR_IDLE_TIMEOUT';
}

/** The edge's TLS certificate could not be verified (unknown CA, another name, expired): nothing was sent. */
export class EdgeCertificateError extends JettyError {
  override readonly code = 'ERR_EDGE_CERTIFICATE';
}

/** A listener could not bind its address (in use, not permitted, not local): the message names the setting. */
export class ListenError extends JettyError {
  override readonly code = 'ERR_LISTEN';
}

/** A command-line flag, environment variable or config value is wrong (exit code 2). */
export class UsageError extends JettyError {
  override readonly code = 'ERR_USAGE';
}

/**
 * Edge to edge: an exchange a peer forwarded names a tunnel this edge does not hold under the epoch it
 * saw (the lease moved, or no local agent serves it); the forwarder may re-read the registry and retry once.
 */
export class MisdirectedError extends JettyError {
  override readonly code = 'ERR_MISDIRECTED';
}

/** Edge to edge: a peer edge could not be reached (no peer URL, connection refused, refused our secret). */
export class PeerUnavailableError extends JettyError {
  override readonly code = 'ERR_PEER_UNAVAILABLE';
}

/** An operation was aborted through its AbortSignal. */
export class AbortError extends JettyError {
  override readonly code = 'ERR_ABORTED';
}

/** Narrows an unknown thrown value to an Error. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
