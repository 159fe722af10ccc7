import type { ServerResponse } from 'node:http';
import { JettyError } from '../errors.js';

/** The public status and short text for each failure (DESIGN.md §1). */
const STATUS_BY_CODE: Record<string, [number, string]> = {
  ERR_BAD_REQUEST: [400, 'Bad Request'],
  ERR_TUNNEL_NOT_FOUND: [404, 'Tunnel Not Found'],
  ERR_AGENT_UNAVAILABLE: [502, 'Agent Unavailable'],
  ERR_EXCHANGE_RESET: [502, 'Agent Unavailable'],
  ERR_TRANSPORT_CLOSED: [502, 'Agent Unavailable'],
  ERR_PROTOCOL: [502, 'Agent Protocol Error'],
  ERR_AGENT_BUSY: [503, 'Agent Busy'],
  ERR_EDGE_UNAVAILABLE: [503, 'Edge Unavailable'],
  ERR_TUNNEL_LIMIT: [429, 'Too Many Requests'],
  ERR_CLIENT_LIMIT: [429, 'Too Many Requests'],
  ERR_HEADERS_TOO_LARGE: [431, 'Request Header Fields Too Large'],
  ERR_AGENT_TIMEOUT: [504, 'Agent Timeout'],
  ERR_IDLE_TIMEOUT: [504, 'Idle Timeout'],
};

/** Seconds a client should wait before retrying a 503. */
export const BUSY_RETRY_AFTER_S = 1;

/** Maps an error to its public status; anything unknown is a 502 (the tunnel failed). */
export function statusFor(err: unknown): number {
  return err instanceof JettyError ? (STATUS_BY_CODE[err.code]?.[0] ?? 502) : 502;
}

/** Sends a short plain-text error page, unless the head has already left. */
export function sendErrorPage(res: ServerResponse, err: unknown, detail?: string): number {
  const status = statusFor(err);
  if (res.headersSent || res.destroyed) return status;
  const code = err instanceof JettyError ? err.code : 'ERR_INTERNAL';
  const title = (STATUS_BY_CODE[code] ?? [502, 'Bad Gateway'])[1];
  const text = detail ?? (err instanceof Error ? err.message : String(err));
  const body = `${status} ${title}\n${text}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-jetty-error': code,
    'cache-control': 'no-store',
  };
  if (status === 503 && !res.hasHeader('retry-after')) headers['retry-after'] = BUSY_RETRY_AFTER_S;
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
  return status;
}
