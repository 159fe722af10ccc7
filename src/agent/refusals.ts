import { AgentUnavailableError, EdgeCertificateError, NameNotAllowedError, NameTakenError, ProtocolError, UnauthorizedError, UsageError, toError } from '../errors.js';
import { WS_CLOSE_BAD_HELLO, WS_CLOSE_NAME_NOT_ALLOWED, WS_CLOSE_NAME_TAKEN, WS_CLOSE_UNAUTHORIZED } from '../well-known.js';
import { certificateError } from './edge-link.js';

/** gRPC status codes the edge refuses a Register with (the numbers of grpc-js `status`, kept here so the table imports no transport). */
export const GRPC_STATUS = { INVALID_ARGUMENT: 3, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

type RefusalClass = new (message: string, options?: { cause?: unknown }) => Error;

/** One way the edge refuses a Hello, as each transport carries it. */
export interface Refusal {
  error: RefusalClass;
  grpcStatus: number;
  wsCloseCode: number;
  /** Put before the edge's reason in the error message. */
  prefix?: string;
}

/**
 * The agent's refusal table: the one place that maps a refused Hello to an error class, for every
 * transport. It mirrors the edge's table (error → gRPC status, → WebSocket close code); keep both in
 * step, row for row.
 */
export const REFUSALS: readonly Refusal[] = [
  { error: NameTakenError, grpcStatus: GRPC_STATUS.ALREADY_EXISTS, wsCloseCode: WS_CLOSE_NAME_TAKEN },
  { error: UsageError, grpcStatus: GRPC_STATUS.INVALID_ARGUMENT, wsCloseCode: WS_CLOSE_BAD_HELLO },
  { error: UnauthorizedError, grpcStatus: GRPC_STATUS.UNAUTHENTICATED, wsCloseCode: WS_CLOSE_UNAUTHORIZED, prefix: 'the edge refused the token: ' },
  { error: NameNotAllowedError, grpcStatus: GRPC_STATUS.PERMISSION_DENIED, wsCloseCode: WS_CLOSE_NAME_NOT_ALLOWED },
];

/** The refusal a transport's code stands for, as an error; undefined for a code that refuses nothing. */
export function refusalError(key: 'grpcStatus' | 'wsCloseCode', code: unknown, reason: string, cause?: unknown): Error | undefined {
  const row = REFUSALS.find((r) => r[key] === code);
  return row ? new row.error(`${row.prefix ?? ''}${reason}`, { cause }) : undefined;
}

/** Refusals no retry can fix: the agent stops and says why. */
export function isFinal(err: unknown): boolean {
  return err instanceof UnauthorizedError || err instanceof NameNotAllowedError || err instanceof UsageError;
}

/**
 * Why a registration with the edge at `where` failed, for a failure that is no refusal: our own
 * errors pass as they are, a failed certificate check becomes EdgeCertificateError, anything else
 * AgentUnavailableError (retryable).
 */
export function registrationError(err: unknown, where: string): Error {
  if (REFUSALS.some((r) => err instanceof r.error) || err instanceof AgentUnavailableError || err instanceof ProtocolError || err instanceof EdgeCertificateError) {
    return err as Error;
  }
  return certificateError(err, where) ?? new AgentUnavailableError(`cannot register with the edge at ${where}: ${toError(err).message}`, { cause: err });
}
