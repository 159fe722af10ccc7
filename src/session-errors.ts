import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  BadHelloError,
  EdgeUnavailableError,
  NameNotAllowedError,
  NameTakenError,
  ProtocolError,
  UnauthorizedError,
  UsageError,
  type JettyError,
} from './errors.js';
import {
  WS_CLOSE_BAD_HELLO,
  WS_CLOSE_NAME_NOT_ALLOWED,
  WS_CLOSE_NAME_TAKEN,
  WS_CLOSE_UNAUTHORIZED,
  WS_CLOSE_UNAVAILABLE,
} from './well-known.js';

/**
 * The session boundary's one two-way error table: how the edge ends an agent's control channel for
 * each error it can act on, per transport, and what the agent makes of it again. Shared vocabulary
 * (like well-known.ts): the edge maps error → status / close code, the agent maps back, so both read
 * the same rows. Errors themselves know nothing of gRPC or WebSocket (errors.ts).
 */
export interface SessionErrorRow {
  /** The error's stable `code` (errors.ts). */
  code: string;
  /** gRPC status the edge ends the Register call with. */
  grpcStatus: GrpcStatus;
  /** WebSocket close code the edge closes the agent socket with. */
  wsCloseCode: number;
  /**
   * The error the agent raises on reading it back. A bad Hello is the user's flag (the name), so the
   * agent raises a UsageError (exit 2) where the edge saw a BadHelloError.
   */
  toError: (message: string, options?: { cause?: unknown }) => JettyError;
}

/** WebSocket close codes of RFC 6455 the session uses. */
export const WS_CLOSE_GOING_AWAY = 1001;
export const WS_CLOSE_PROTOCOL_ERROR = 1002;
export const WS_CLOSE_INTERNAL_ERROR = 1011;

/** Rows in order; a status or close code appears once, so the table reads both ways. */
export const SESSION_ERRORS: readonly SessionErrorRow[] = [
  { code: 'ERR_UNAUTHORIZED', grpcStatus: GrpcStatus.UNAUTHENTICATED, wsCloseCode: WS_CLOSE_UNAUTHORIZED, toError: (m, o) => new UnauthorizedError(m, o) },
  { code: 'ERR_NAME_NOT_ALLOWED', grpcStatus: GrpcStatus.PERMISSION_DENIED, wsCloseCode: WS_CLOSE_NAME_NOT_ALLOWED, toError: (m, o) => new NameNotAllowedError(m, o) },
  { code: 'ERR_NAME_TAKEN', grpcStatus: GrpcStatus.ALREADY_EXISTS, wsCloseCode: WS_CLOSE_NAME_TAKEN, toError: (m, o) => new NameTakenError(m, o) },
  { code: 'ERR_EDGE_UNAVAILABLE', grpcStatus: GrpcStatus.UNAVAILABLE, wsCloseCode: WS_CLOSE_UNAVAILABLE, toError: (m) => new EdgeUnavailableError(m, 'edge') },
  { code: 'ERR_BAD_HELLO', grpcStatus: GrpcStatus.INVALID_ARGUMENT, wsCloseCode: WS_CLOSE_BAD_HELLO, toError: (m, o) => new UsageError(m, o) },
  { code: 'ERR_PROTOCOL', grpcStatus: GrpcStatus.FAILED_PRECONDITION, wsCloseCode: WS_CLOSE_PROTOCOL_ERROR, toError: (m, o) => new ProtocolError(m, o) },
];

const byCode = new Map(SESSION_ERRORS.map((r) => [r.code, r]));
const byGrpc = new Map(SESSION_ERRORS.map((r) => [r.grpcStatus, r]));
const byWs = new Map(SESSION_ERRORS.map((r) => [r.wsCloseCode, r]));

/** The row of `err` (by its code; a subclass of a listed error without a row of its own counts as it). */
export function sessionErrorRow(err: unknown): SessionErrorRow | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && byCode.has(code)) return byCode.get(code);
  if (err instanceof BadHelloError) return byCode.get('ERR_BAD_HELLO');
  if (err instanceof ProtocolError) return byCode.get('ERR_PROTOCOL');
  return undefined;
}

/** The gRPC status that ends a Register call for `err`; undefined = a clean end (OK). */
export function grpcStatusFor(err: unknown): GrpcStatus | undefined {
  const row = sessionErrorRow(err);
  if (row) return row.grpcStatus;
  return isKnown(err) ? undefined : GrpcStatus.INTERNAL;
}

/** The close code that ends an agent socket for `err`: its row's, else going away, or 1011 for a bug. */
export function wsCloseCodeFor(err: unknown): number {
  const row = sessionErrorRow(err);
  if (row) return row.wsCloseCode;
  return isKnown(err) ? WS_CLOSE_GOING_AWAY : WS_CLOSE_INTERNAL_ERROR;
}

/** The agent's error for a gRPC status the edge ended Register with, or undefined for a status not in the table. */
export function errorForGrpcStatus(code: number, details: string, options?: { cause?: unknown }): JettyError | undefined {
  return byGrpc.get(code)?.toError(details, options);
}

/** The agent's error for a close code the edge closed the socket with, or undefined for one not in the table. */
export function errorForWsClose(code: number, reason: string, options?: { cause?: unknown }): JettyError | undefined {
  return byWs.get(code)?.toError(reason, options);
}

/** An error of Jetty's taxonomy (an expected end), as opposed to a thrown bug. */
function isKnown(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null)?.code === 'string' && String((err as { code: string }).code).startsWith('ERR_');
}
