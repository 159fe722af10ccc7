import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { pipe } from 'it-pipe';
import { ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import type { Registry, TunnelSession } from '../actors/registry.js';
import {
  AbortError,
  BadRequestError,
  ClientLimitError,
  EdgeUnavailableError,
  HeadersTooLargeError,
  IdleTimeoutError,
  LimitError,
  ProtocolError,
  TunnelLimitError,
  TunnelNotFoundError,
  toError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { abortable } from '../streams/abortable.js';
import { ExchangePipeline, oneChunk, type ExchangeRecord } from '../streams/exchange-pipeline.js';
import { incomingChunks } from '../streams/http-source.js';
import { completed, isClosed, writeResponse } from '../streams/http-sink.js';
import { CidrSet } from './cidr-set.js';
import { sendErrorPage } from './error-pages.js';
import { PerAddressLimit } from './client-limits.js';
import { RateLimiter, type EdgeLimits } from './limits.js';
import type { EdgeMetrics } from './metrics.js';
import { H2_PSEUDO_HEADER_COUNT, h2HeadBytes } from './public-h2.js';
import { formatAuthority, h2Authority, parseAuthority, requestHead, requestTrailers, singleHost, tunnelName } from './request-head.js';

/**
 * Ends the connection once the response has gone out (the request body was left unread). Not for an
 * HTTP/2 stream: its connection carries other streams, and its own unread body is bounded by its window.
 */
function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  const socket = res.socket;
  if (!socket || req.httpVersionMajor === 2) return;
  if (completed(res)) socket.end();
  else res.once('finish', () => socket.end());
}

/** The upload of a request whose head was all of it, already sent. */
const SENT: Promise<void> = Promise.resolve();

/**
 * Whether `exchange` took the request `head` (with its END) whole, now. A throw counts as not taken: the
 * sink then sends it and reports any failure through the exchange, inside the router's teardown.
 */
function sentWhole(exchange: ExchangeDuplex, head: HTTPChunk): boolean {
  try {
    return exchange.sendWhole?.(head) === true;
  } catch {
    return false;
  }
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
  /**
   * Several edges with forwarding: while this edge drains, its agents move to the others; a request
   * that still reaches it (a connection accepted before its listener closed) is served by forwarding
   * it there, once the agent is back (within reconnect-grace), instead of a 503.
   */
  handsOver?: boolean;
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
export class Router extends EventEmitter<{ idle: [] }> {
  /** Set on drain: new requests get 503 (unless handsOver) and Connection: close. */
  draining = false;
  /** Exchanges relayed right now (all tunnels); `idle` is emitted each time it falls to 0. */
  openExchanges = 0;
  private readonly init: RouterInit;
  private readonly log: Logger;
  private readonly perTunnel = new Map<string, number>();
  private readonly rate: RateLimiter;
  private readonly trusted: CidrSet;
  /** Exchanges in flight per client address (the forwarded one behind a trusted proxy). */
  private readonly perClient: PerAddressLimit;

  constructor(init: RouterInit) {
    super();
    this.init = init;
    this.log = init.logger;
    this.rate = new RateLimiter(init.limits.tunnelRps);
    this.trusted = new CidrSet(init.trustedProxies);
    this.perClient = new PerAddressLimit(init.limits.maxConnectionsPerIp);
  }

  /** A trusted proxy's X-Forwarded-* are kept, and its connections stand for many clients. */
  isTrusted(address: string): boolean {
    return this.trusted.has(address);
  }

  /** The client an exchange counts against: the peer, or the last address a trusted proxy forwarded. */
  private clientAddress(req: IncomingMessage, trusted: boolean): string {
    const peer = req.socket.remoteAddress ?? '';
    const forwarded = req.headers['x-forwarded-for'];
    if (!trusted || typeof forwarded !== 'string') return peer;
    return forwarded.slice(forwarded.lastIndexOf(',') + 1).trim() || peer;
  }

  /**
   * The `request` / `checkContinue` listener of the public servers, HTTP/1.1 and HTTP/2 (one stream is
   * one request). The HTTP/2 compatibility request and response offer every member the router and the
   * stream adapters use, with the differences handled where they matter: the authority
   * (h2Authority), the socket (a stream's proxy: 'close' and timeouts are the stream's own, and the
   * shared connection is never ended for one stream), trailers and `destroyed` (http-sink), and
   * per-client counting (admit).
   */
  readonly handle = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    void this.route(req as IncomingMessage, res as ServerResponse);
  };

  /** The request id: a trusted proxy's X-Request-Id, else a new one. */
  requestId(req: IncomingMessage, trusted: boolean): string {
    const incomingId = trusted ? req.headers['x-request-id'] : undefined;
    return typeof incomingId === 'string' && incomingId.length <= 200 ? incomingId : randomUUID();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const trusted = this.trusted.has(req.socket.remoteAddress ?? '');
    const id = this.requestId(req, trusted);
    const h2 = req.httpVersionMajor === 2;
    const fields = { host: '', transport: 'none', protocol: h2 ? 'h2' : `http/${req.httpVersion}` };
    const pipeline = new ExchangePipeline({ id, method: req.method, path: req.url, logger: this.log, fields });
    let name: string | undefined;
    let failure: Error | undefined;
    let release: (() => void) | undefined;
    try {
      const authority = h2 ? h2Authority(req) : parseAuthority(singleHost(req));
      fields.host = formatAuthority(authority);
      name = tunnelName(authority.host, this.init.domain);
      if (name === undefined) {
        this.init.ownHost(req, res);
        return;
      }
      // CONNECT on HTTP/2 asks for a raw tunnel to :authority (RFC 9113 §8.5), not a request to an origin.
      if (h2 && req.method === 'CONNECT') throw new BadRequestError('CONNECT is not served');
      release = this.enter(req, res, name, trusted);
      const session = await this.sessionFor(name);
      fields.transport = session.transport;
      const head = requestHead(req, authority, randomUUID(), { requestId: id, trusted });
      await this.relay(req, res, head, session, pipeline);
    } catch (err) {
      failure = toError(err);
      if (failure instanceof LimitError) this.init.metrics.limitRejections.inc({ limit: failure.limit });
      if (res.headersSent) {
        res.destroy(failure);
      } else {
        if (failure instanceof LimitError && failure.retryAfterS !== undefined) res.setHeader('retry-after', failure.retryAfterS);
        pipeline.status = sendErrorPage(res, failure);
      }
    } finally {
      release?.();
    }
    this.record(pipeline.finish(failure), fields.transport);
  }

  /** Counts a finished exchange (its log line already written) in the metrics. */
  record(entry: ExchangeRecord, transport: string): void {
    const { metrics } = this.init;
    metrics.requests.inc({ code: String(entry.status), transport });
    metrics.duration.observe({ transport }, entry.ms / 1000);
    metrics.receivedBytes.inc(entry.bytesIn);
    metrics.sentBytes.inc(entry.bytesOut);
  }

  /**
   * Admits one exchange for tunnel `name` (admit, then the per-tunnel cap) and counts it; throws
   * LimitError when it may not pass. Returns the release, to call once when the exchange is over.
   * Shared by requests and upgraded connections (upgrade-relay.ts), which count as exchanges.
   */
  enter(req: IncomingMessage, res: ServerResponse | undefined, name: string, trusted: boolean): () => void {
    const client = this.admit(req, res, name, trusted);
    const inFlight = this.perTunnel.get(name) ?? 0;
    if (inFlight >= this.init.limits.tunnelMaxExchanges) {
      if (client !== undefined) this.perClient.release(client);
      throw new TunnelLimitError(`the tunnel has ${inFlight} requests in flight`, 'tunnel_exchanges', 1);
    }
    this.perTunnel.set(name, inFlight + 1);
    this.openExchanges++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (client !== undefined) this.perClient.release(client);
      this.openExchanges--;
      const n = (this.perTunnel.get(name) ?? 1) - 1;
      if (n === 0) this.perTunnel.delete(name);
      else this.perTunnel.set(name, n);
      if (this.openExchanges === 0) this.emit('idle');
    };
  }

  /** A session of tunnel `name`, waiting up to reconnect-grace for a reconnecting agent; TunnelNotFoundError otherwise. */
  async sessionFor(name: string): Promise<TunnelSession> {
    const session = this.init.registry.lookup(name) ?? (await this.init.registry.waitFor(name, this.init.reconnectGraceMs));
    if (!session) throw new TunnelNotFoundError('no tunnel of that name is connected to this edge');
    return session;
  }

  /**
   * The limits a request for tunnel `name` passes before it may wait for an exchange (LimitError when
   * it does not). Returns the client address it now counts against (behind a trusted proxy): the caller releases it.
   */
  private admit(req: IncomingMessage, res: ServerResponse | undefined, name: string, trusted: boolean): string | undefined {
    const h2 = req.httpVersionMajor === 2;
    if (this.draining) {
      if (res) res.shouldKeepAlive = false;
      if (!this.init.handsOver) throw new EdgeUnavailableError('edge is draining', 'draining', 1);
    }
    // HTTP/2 pseudo-headers (4) are the request line, not header lines.
    if (req.rawHeaders.length / 2 - (h2 ? H2_PSEUDO_HEADER_COUNT : 0) > this.init.limits.maxHeaderCount) {
      throw new HeadersTooLargeError(`more than ${this.init.limits.maxHeaderCount} header lines`, 'header_count');
    }
    // nghttp2 holds a peer to SETTINGS_MAX_HEADER_LIST_SIZE only once the peer has seen it: a head sent
    // with the client preface is let through, so the limit is checked here as HTTP/1.1's parser does.
    if (h2 && h2HeadBytes(req.rawHeaders) > this.init.limits.maxHeaderBytes) {
      throw new HeadersTooLargeError(`request head over ${this.init.limits.maxHeaderBytes} bytes`, 'header_bytes');
    }
    const allowed = this.rate.take(name);
    // Limit and not-found messages reach the public page: they never quote the Host (the log has it).
    if (allowed !== true) throw new TunnelLimitError(`the tunnel is over ${this.init.limits.tunnelRps} requests/s`, 'tunnel_rps', allowed);
    // A direct client is bounded by its connections (one HTTP/1.1 exchange each, capped at accept);
    // counting its exchanges too would refuse a keep-alive client's next request, parsed while the
    // previous one is still being released. Behind a trusted proxy, connections stand for many
    // clients: there the forwarded client's exchanges are counted. An HTTP/2 connection carries many
    // exchanges at once, so a direct HTTP/2 client's streams are counted too.
    if (!trusted && !h2) return undefined;
    const address = this.clientAddress(req, trusted);
    if (!this.perClient.take(address)) throw new ClientLimitError(`client address has ${this.perClient.max} requests in flight`, 'ip_exchanges', 1);
    return address;
  }

  /**
   * Opens an exchange on `session`, attached to `pipeline`; given up with AbortError when `client` (the
   * response or the socket) closes first: the client may leave while the exchange waits for a slot.
   */
  async openExchange(session: TunnelSession, head: HTTPChunk, client: EventEmitter, pipeline: ExchangePipeline): Promise<ExchangeDuplex> {
    // A session that can start it now needs no way to give up waiting: no AbortController per request.
    const now = session.openNow?.(head);
    if (now) return pipeline.attach(now);
    const gone = new AbortController();
    const onGone = (): void => gone.abort(new AbortError('public client went away'));
    client.once('close', onGone);
    try {
      return pipeline.attach(await session.openExchange(head, { signal: gone.signal }));
    } finally {
      client.off('close', onGone);
    }
  }

  /** The exchange's two pipes: request body → exchange, exchange → response. Sets `pipeline.status`. */
  private async relay(req: IncomingMessage, res: ServerResponse, head: HTTPChunk, session: TunnelSession, pipeline: ExchangePipeline): Promise<void> {
    // A request already complete without a body (a GET): its END can ride on its HEADERS, one message
    // instead of two, to an agent that reads folded chunks (the exchange's sink unfolds it otherwise).
    if (req.complete && req.readableLength === 0 && req.rawTrailers.length === 0) head.end = true;
    const exchange = await this.openExchange(session, head, res, pipeline);
    // A client that leaves before the response is complete cancels the exchange (and the origin request).
    const onClose = (): void => {
      if (!completed(res)) pipeline.abort(new AbortError('public client went away'), ResetCode.CANCEL);
    };
    // No bytes either way for idleTimeoutMs: the socket's own timer sees both directions.
    const onIdle = pipeline.idleAction(this.init.limits.idleTimeoutMs);
    res.on('close', onClose);
    // After a complete response Node no longer aborts the request when its socket closes: an upload
    // still running would wait for bytes that never come.
    const socket = req.socket;
    const onSocketClose = (): void => {
      if (!req.complete) pipeline.abort(new AbortError('public client went away mid-upload'), ResetCode.CANCEL);
    };
    // A request already wholly read (every GET) has no upload to stop: no listener on its socket.
    const uploading = !req.complete;
    if (uploading) socket.once('close', onSocketClose);
    // Through res (not the socket) so Node sees a listener and leaves the socket to us.
    res.setTimeout(this.init.limits.idleTimeoutMs, onIdle);
    if (isClosed(res)) onClose();
    // The upload fails on its own only when the client leaves or the exchange ends early (an origin
    // that answered without reading the body): the exchange abort then ends the download.
    // Bytes are counted where they are read and written (a counting stage per direction cost a promise
    // hop per chunk on every request).
    // A request complete before it was opened (head.end) never waits for a byte: nothing to abort,
    // so it costs no AbortSignal and no promise per read.
    // Such a request is its head alone: no reader of the (empty) body, no pipe stages, and when the head
    // went out with its END (an agent that reads folded chunks) no sink at all.
    const upload = (
      head.end
        ? sentWhole(exchange, head)
          ? SENT
          : exchange.sink(oneChunk(head))
        : pipe(
            incomingChunks(req, head, pipeline.bytesIn, requestTrailers),
            (source) => abortable(source, pipeline.failed),
            (source) => exchange.sink(source),
          )
    ).catch((err: unknown) => pipeline.abort(toError(err), ResetCode.CANCEL));
    try {
      pipeline.status = await writeResponse(res, exchange.source[Symbol.asyncIterator](), () => exchange.buffered, pipeline.bytesOut, (accept) =>
        exchange.takeRest?.(accept),
      );
      // The request body may still be flowing to an origin that answered early: the exchange (and its
      // count) lasts until it is done.
      await upload;
      // The rest of an unread body must not be parsed as the next request on this connection.
      if (!req.complete) closeAfterResponse(req, res);
    } catch (err) {
      const e = toError(err);
      // A response the edge refuses (ambiguous framing, a body that does not match its length) is the
      // agent's protocol error; anything else here means the public side gave up.
      pipeline.abort(e, e instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.CANCEL);
      // An upload still arriving stops here. A request Node has wholly parsed keeps its connection:
      // destroying a request nobody read to its end (a GET answered by an agent's RESET) destroys the
      // socket, and the client would get a hang-up instead of its error page.
      if (!req.complete) req.destroy();
      throw exchange.error instanceof IdleTimeoutError ? exchange.error : err;
    } finally {
      // Only our listener goes: the socket timer is Node's again. A finished response has already re-armed
      // it with the keep-alive timeout (disarming it here left idle connections open for ever); a failed one
      // is destroyed by the caller.
      res.off('close', onClose);
      if (uploading) socket.off('close', onSocketClose);
      res.off('timeout', onIdle);
    }
  }
}
