import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipe } from 'it-pipe';
import { ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import type { AgentSession } from '../actors/agent-session.js';
import type { Registry } from '../actors/registry.js';
import {
  AbortError,
  BadRequestError,
  EdgeUnavailableError,
  HeadersTooLargeError,
  IdleTimeoutError,
  LimitError,
  TunnelLimitError,
  TunnelNotFoundError,
  toError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { incomingChunks, type ByteCounter } from '../streams/http-source.js';
import { writeResponse } from '../streams/http-sink.js';
import { sendErrorPage } from './error-pages.js';
import { RateLimiter, type EdgeLimits } from './limits.js';
import type { EdgeMetrics } from './metrics.js';
import { requestHead, singleHost, tunnelName } from './request-head.js';

/** Ends the connection once the response has gone out (the request body was left unread). */
function closeAfterResponse(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  if (res.writableFinished) socket.end();
  else res.once('finish', () => socket.end());
}

/** Answers requests addressed to the edge's own host (discovery, the landing page). */
export type OwnHostHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface RouterInit {
  domain: string;
  registry: Registry;
  logger: Logger;
  ownHost: OwnHostHandler;
  metrics: EdgeMetrics;
  limits: EdgeLimits;
  /** How long to hold a request for a tunnel whose agent is reconnecting, in ms. */
  reconnectGraceMs: number;
  /** Peers whose X-Forwarded-* and X-Request-Id are kept. */
  trustedProxies: readonly string[];
}

/**
 * Public HTTP → tunnel. Per request: route by Host, apply limits, open an exchange on the least
 * loaded session of the tunnel, then two pipelines run until both finish: request body → exchange,
 * exchange → response. Every failure aborts the whole exchange (the origin request on the agent,
 * the public response here).
 *
 * Teardown order per request: exchange.abort (RESET / Cancel to the agent) → request destroyed →
 * response destroyed (cut, never completed) → counters released → log line.
 */
export class Router {
  /** Set on drain: new requests get 503 and Connection: close. */
  draining = false;
  /** Exchanges relayed right now (all tunnels). */
  openExchanges = 0;
  private readonly init: RouterInit;
  private readonly log: Logger;
  private readonly perTunnel = new Map<string, number>();
  private readonly rate: RateLimiter;
  private readonly trusted: ReadonlySet<string>;

  constructor(init: RouterInit) {
    this.init = init;
    this.log = init.logger;
    this.rate = new RateLimiter(init.limits.tunnelRps);
    this.trusted = new Set(init.trustedProxies);
  }

  /** The `request` / `checkContinue` listener of the public server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    void this.route(req, res);
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const trusted = this.trusted.has(req.socket.remoteAddress ?? '');
    const incomingId = trusted ? req.headers['x-request-id'] : undefined;
    const id = typeof incomingId === 'string' && incomingId.length <= 200 ? incomingId : randomUUID();
    let host = '';
    let name: string | undefined;
    const up: ByteCounter = { bytes: 0 };
    const down: ByteCounter = { bytes: 0 };
    let status = 0;
    let transport = 'none';
    let failure: Error | undefined;
    let counted = false;
    try {
      host = singleHost(req);
      name = tunnelName(host, this.init.domain);
      if (name === undefined) {
        this.init.ownHost(req, res);
        return;
      }
      if (this.draining) {
        res.shouldKeepAlive = false;
        throw new EdgeUnavailableError('edge is draining', 'draining', 1);
      }
      if (req.rawHeaders.length / 2 > this.init.limits.maxHeaderCount) {
        throw new HeadersTooLargeError(`more than ${this.init.limits.maxHeaderCount} header lines`, 'header_count');
      }
      const allowed = this.rate.take(name);
      // Limit and not-found messages reach the public page: they never quote the Host (the log has it).
      if (allowed !== true) throw new TunnelLimitError(`the tunnel is over ${this.init.limits.tunnelRps} requests/s`, 'tunnel_rps', allowed);
      const inFlight = this.perTunnel.get(name) ?? 0;
      if (inFlight >= this.init.limits.tunnelMaxExchanges) {
        throw new TunnelLimitError(`the tunnel has ${inFlight} requests in flight`, 'tunnel_exchanges', 1);
      }
      this.perTunnel.set(name, inFlight + 1);
      this.openExchanges++;
      counted = true;
      const session = this.init.registry.lookup(name) ?? (await this.init.registry.waitFor(name, this.init.reconnectGraceMs));
      if (!session) throw new TunnelNotFoundError('no tunnel of that name is connected to this edge');
      transport = session.transport;
      const head = requestHead(req, host, randomUUID(), { requestId: id, trusted });
      status = await this.relay(req, res, head, session, up, down);
    } catch (err) {
      failure = toError(err);
      if (failure instanceof LimitError) this.init.metrics.limitRejections.inc({ limit: failure.limit });
      if (res.headersSent) {
        res.destroy(failure);
      } else {
        if (failure instanceof LimitError && failure.retryAfterS !== undefined) res.setHeader('retry-after', failure.retryAfterS);
        status = sendErrorPage(res, failure, failure instanceof BadRequestError ? failure.message : undefined);
      }
    } finally {
      if (counted && name !== undefined) {
        this.openExchanges--;
        const n = (this.perTunnel.get(name) ?? 1) - 1;
        if (n === 0) this.perTunnel.delete(name);
        else this.perTunnel.set(name, n);
      }
    }
    this.finish(req, id, host, transport, status, started, up.bytes, down.bytes, failure);
  }

  private async relay(
    req: IncomingMessage,
    res: ServerResponse,
    head: HTTPChunk,
    session: AgentSession,
    up: ByteCounter,
    down: ByteCounter,
  ): Promise<number> {
    // The client may leave while the exchange waits for a slot or a stream.
    const gone = new AbortController();
    const onGone = (): void => gone.abort(new AbortError('public client went away'));
    res.once('close', onGone);
    let exchange: ExchangeDuplex;
    try {
      exchange = await session.openExchange(head, { signal: gone.signal });
    } finally {
      res.off('close', onGone);
    }
    // A client that leaves before the response is complete cancels the exchange (and the origin request).
    const onClose = (): void => {
      if (!res.writableFinished) exchange.abort(new AbortError('public client went away'), ResetCode.CANCEL);
    };
    // No bytes either way for idleTimeoutMs: the socket's own timer sees both directions.
    const onIdle = (): void => exchange.abort(new IdleTimeoutError(`no bytes either way for ${this.init.limits.idleTimeoutMs} ms`), ResetCode.CANCEL);
    res.on('close', onClose);
    // Through res (not the socket) so Node sees a listener and leaves the socket to us.
    res.setTimeout(this.init.limits.idleTimeoutMs, onIdle);
    if (res.destroyed) onClose();
    // The upload fails on its own only when the client leaves or the exchange ends early (an origin
    // that answered without reading the body): the exchange abort then ends the download.
    const upload = pipe(incomingChunks(req, head, up), (source) => exchange.sink(source)).catch((err: unknown) => {
      exchange.abort(toError(err), ResetCode.CANCEL);
    });
    try {
      const status = await writeResponse(res, exchange.source[Symbol.asyncIterator](), () => exchange.buffered, down);
      // The request body may still be flowing to an origin that answered early: the exchange (and its
      // count) lasts until it is done.
      await upload;
      // The rest of an unread body must not be parsed as the next request on this connection.
      if (!req.complete) closeAfterResponse(res);
      return status;
    } catch (err) {
      exchange.abort(toError(err), ResetCode.CANCEL);
      req.destroy();
      throw exchange.error instanceof IdleTimeoutError ? exchange.error : err;
    } finally {
      res.off('close', onClose);
      res.off('timeout', onIdle);
      req.socket?.setTimeout(0);
    }
  }

  private finish(
    req: IncomingMessage,
    id: string,
    host: string,
    transport: string,
    status: number,
    started: number,
    bytesIn: number,
    bytesOut: number,
    err: unknown,
  ): void {
    const ms = performance.now() - started;
    const { metrics } = this.init;
    metrics.requests.inc({ code: String(status), transport });
    metrics.duration.observe({ transport }, ms / 1000);
    metrics.receivedBytes.inc(bytesIn);
    metrics.sentBytes.inc(bytesOut);
    const entry = { id, host, method: req.method, path: req.url, status, bytesIn, bytesOut, ms: Math.round(ms * 10) / 10 };
    if (err) this.log.info({ ...entry, err: toError(err).message }, 'request failed');
    else this.log.info(entry, 'request');
  }
}
