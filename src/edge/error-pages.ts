import type { ServerResponse } from 'node:http';
import { ResetCode } from '../codec/http-chunk.js';
import { isClosed } from '../streams/http-sink.js';
import { BadRequestError, ExchangeResetError, JettyError } from '../errors.js';

/**
 * What a public client is told of a failure: a status, a title, the stable `x-jetty-error` code and one
 * plain sentence. Nothing a peer wrote, no address and no system error ever goes on a page: the detail
 * goes to the edge log beside the request id.
 */
export interface PublicError {
  status: number;
  title: string;
  code: string;
  sentence: string;
}

const page = (status: number, title: string, code: string, sentence: string): PublicError => ({ status, title, code, sentence });

const BAD_REQUEST = page(400, 'Bad Request', 'ERR_BAD_REQUEST', 'The request is malformed or ambiguous.');
const AGENT_UNAVAILABLE = page(502, 'Agent Unavailable', 'ERR_AGENT_UNAVAILABLE', 'The agent serving this tunnel went away before it answered.');
const ORIGIN_UNAVAILABLE = page(
  502,
  'Local Service Unavailable',
  'ERR_ORIGIN_UNAVAILABLE',
  'The agent serving this tunnel is connected, but the local service behind it refused the connection or failed to answer.',
);
const AGENT_PROTOCOL = page(502, 'Agent Protocol Error', 'ERR_AGENT_PROTOCOL', 'The agent serving this tunnel sent an answer the edge cannot pass on.');
const INTERNAL = page(502, 'Bad Gateway', 'ERR_INTERNAL', 'The edge could not complete this request.');

/** The page for each error code (errors.ts); codes not listed get INTERNAL. DESIGN.md §1 fixes the statuses. */
const PAGE_BY_CODE: Record<string, PublicError> = {
  ERR_BAD_REQUEST: BAD_REQUEST,
  ERR_TUNNEL_NOT_FOUND: page(404, 'Tunnel Not Found', 'ERR_TUNNEL_NOT_FOUND', 'No tunnel with this name is connected to this edge.'),
  ERR_AGENT_UNAVAILABLE: AGENT_UNAVAILABLE,
  ERR_TRANSPORT_CLOSED: AGENT_UNAVAILABLE,
  ERR_PROTOCOL: AGENT_PROTOCOL,
  ERR_FRAME_TOO_LARGE: AGENT_PROTOCOL,
  ERR_AGENT_BUSY: page(503, 'Agent Busy', 'ERR_AGENT_BUSY', 'The agent serving this tunnel has too many requests in flight; try again shortly.'),
  ERR_EDGE_UNAVAILABLE: page(503, 'Edge Unavailable', 'ERR_EDGE_UNAVAILABLE', 'This edge is not taking new requests right now; try again shortly.'),
  ERR_TUNNEL_LIMIT: page(429, 'Too Many Requests', 'ERR_TUNNEL_LIMIT', 'This tunnel is receiving more requests than it allows; try again shortly.'),
  ERR_CLIENT_LIMIT: page(429, 'Too Many Requests', 'ERR_CLIENT_LIMIT', 'Your address has as many requests open at this edge as it may; try again shortly.'),
  ERR_HEADERS_TOO_LARGE: page(431, 'Request Header Fields Too Large', 'ERR_HEADERS_TOO_LARGE', 'The request head is larger than this edge accepts.'),
  ERR_PEER_UNAVAILABLE: AGENT_UNAVAILABLE,
  ERR_AGENT_TIMEOUT: page(504, 'Agent Timeout', 'ERR_AGENT_TIMEOUT', 'The agent serving this tunnel did not take the request in time.'),
  ERR_IDLE_TIMEOUT: page(504, 'Idle Timeout', 'ERR_IDLE_TIMEOUT', 'No data passed either way for too long.'),
};

/** Seconds a client should wait before retrying a 503. */
export const BUSY_RETRY_AFTER_S = 1;

/**
 * The public face of a failure. A RESET from the agent says why by its code: ORIGIN_ERROR is the local
 * service, PROTOCOL_ERROR a broken exchange, anything else the agent giving up on it.
 */
export function publicErrorFor(err: unknown): PublicError {
  if (err instanceof ExchangeResetError) {
    if (err.resetCode === ResetCode.ORIGIN_ERROR) return ORIGIN_UNAVAILABLE;
    if (err.resetCode === ResetCode.PROTOCOL_ERROR) return AGENT_PROTOCOL;
    // The edge holding the tunnel (a peer) cannot take it now: the same answer as a busy local agent.
    if (err.resetCode === ResetCode.UNAVAILABLE) return PAGE_BY_CODE.ERR_AGENT_BUSY;
    return AGENT_UNAVAILABLE;
  }
  return (err instanceof JettyError && PAGE_BY_CODE[err.code]) || INTERNAL;
}

/**
 * Sends the short plain-text page of `err`, unless the head has already left; returns the status. A
 * BadRequestError's own text (always the edge's words, never the client's) says what was wrong.
 */
export function sendErrorPage(res: ServerResponse, err: unknown): number {
  const p = publicErrorFor(err);
  if (res.headersSent || isClosed(res)) return p.status;
  const sentence = err instanceof BadRequestError ? `${p.sentence} (${err.message})` : p.sentence;
  const body = `${p.status} ${p.title}\n${sentence}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-jetty-error': p.code,
    'cache-control': 'no-store',
  };
  if (p.status === 503 && !res.hasHeader('retry-after')) headers['retry-after'] = BUSY_RETRY_AFTER_S;
  res.writeHead(p.status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
  return p.status;
}
