import { Agent as HttpAgent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { ChunkKind, ResetCode, type Header, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields, flatFields, framedFields, trailerFields, upgradeProtocol } from '../codec/http-fields.js';
import { ExchangeResetError, ProtocolError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { waitForEvent, type AbortOptions } from '../wait.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { writeBody, flushHeadUnlessBodyReady } from '../streams/http-sink.js';
import { ExchangePipeline, type ExchangeRecord } from '../streams/exchange-pipeline.js';
import { incomingChunks } from '../streams/http-source.js';
import { H2Origin } from './h2-origin.js';
import { relayUpgrade } from './origin-upgrade.js';
import { OriginTarget } from './origin-target.js';
import { PooledOrigin } from './pooled-origin.js';

/** Idle keep-alive connections kept to the origin. */
export const ORIGIN_MAX_FREE_SOCKETS = 64;

/** What the agent reports of one finished exchange (its log line, and the live status view). */
export type RequestRecord = ExchangeRecord;

export interface OriginProxyInit {
  /** The local service: http://localhost:3000, https://… (TLS) or h2c://… (HTTP/2 prior knowledge); its path is a base path. */
  origin: URL;
  /** https:// origins: accept a certificate that does not verify (self-signed). Default false. */
  originInsecure?: boolean;
  /** Host the origin sees: preserve (default), rewrite, or a literal host[:port]. */
  hostHeader?: string;
  logger: Logger;
}

const CONTINUE_HEAD: HTTPChunk = Object.freeze({ kind: ChunkKind.HEADERS, status: 100, headers: [] }) as HTTPChunk;

/**
 * Serves exchanges against the local service: the request chunks become an HTTP/1.1 request whose head
 * is re-framed as the edge does it (framedFields: hop-by-hop fields and Transfer-Encoding dropped; Node
 * frames the body by the one Content-Length the client gave, chunked otherwise, never both, and the body
 * must match it), the response becomes chunks. A reset from either side destroys the origin request at once.
 * A request asking for an upgrade (Connection: upgrade + Upgrade) goes to relayUpgrade (origin-upgrade.ts).
 */
export class OriginProxy {
  private readonly origin: URL;
  private readonly log: Logger;
  private readonly agent: HttpAgent;
  private readonly target: OriginTarget;
  private readonly originInsecure: boolean;
  /** The HTTP/2 client of an h2c:// origin; undefined for HTTP/1.1 origins. */
  private readonly h2: H2Origin | undefined;
  /** Requests without a body to an http:// origin (PooledOrigin); undefined for other origins. */
  private readonly pooled: PooledOrigin | undefined;
  /** Called after every exchange (the agent's status view listens here). */
  onRequest: ((entry: RequestRecord) => void) | undefined;

  constructor(init: OriginProxyInit) {
    this.origin = init.origin;
    this.log = init.logger;
    this.target = new OriginTarget(init.origin, init.hostHeader);
    this.originInsecure = init.originInsecure ?? false;
    const keepAlive = { keepAlive: true, maxFreeSockets: ORIGIN_MAX_FREE_SOCKETS, noDelay: true };
    this.agent = init.origin.protocol === 'https:' ? new HttpsAgent({ ...keepAlive, rejectUnauthorized: !init.originInsecure }) : new HttpAgent(keepAlive);
    this.h2 = init.origin.protocol === 'h2c:' ? new H2Origin({ origin: init.origin }) : undefined;
    this.pooled = init.origin.protocol === 'http:' ? new PooledOrigin(init.origin) : undefined;
  }

  /**
   * Handles one exchange whose request HEADERS are `head`; resolves when it is over, never rejects.
   * Aborting `options.signal` cancels the exchange (CANCEL to the edge) and the origin request.
   */
  async serve(head: HTTPChunk, exchange: ExchangeDuplex, options: AbortOptions = {}): Promise<void> {
    const id = head.headers?.find((h) => h.name === 'X-Request-Id')?.value ?? head.exchangeId;
    const pipeline = new ExchangePipeline({ id, method: head.method, path: head.target, logger: this.log });
    pipeline.attach(exchange);
    const { signal } = options;
    const onAbort = (): void => pipeline.abort(toError(signal!.reason), ResetCode.CANCEL);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.serveAccepted(head, exchange, pipeline);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    this.onRequest?.(pipeline.finish(exchange.error));
  }

  /** The origin request of an exchange of a kind this agent serves: HTTP/2 for an h2c:// origin, else HTTP/1.1. */
  private async serveAccepted(head: HTTPChunk, exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    if (!pipeline.accepts(head)) return;
    const headers = head.headers ?? [];
    if (this.h2) {
      // HTTP/2 has no Upgrade: the fields are hop-by-hop there and dropped, the origin answers plainly.
      return this.h2.serve(head, { authority: this.target.authority(headers), path: this.target.path(head.target) }, exchange, pipeline);
    }
    const protocol = upgradeProtocol(headers);
    if (protocol !== undefined) {
      const target = { ...head, target: this.target.path(head.target), headers: this.target.fields(headers) };
      return relayUpgrade(this.origin, target, protocol, exchange, pipeline, { originInsecure: this.originInsecure });
    }
    if (this.pooled && PooledOrigin.takes(head, headers)) {
      return this.pooled.serve(head.method ?? 'GET', this.target.path(head.target), this.target.fields(headers), exchange, pipeline);
    }
    let origin: { req: ClientRequest; length: number | undefined } | undefined;
    try {
      origin = this.originRequest(head);
    } catch (err) {
      // Nothing reached the origin: the head was one Node (or framedFields) refuses.
      pipeline.abort(new ProtocolError('request head is not valid HTTP', { cause: err }), ResetCode.PROTOCOL_ERROR);
    }
    if (origin) await this.relay(origin.req, origin.length, expectsContinue(headers), exchange, pipeline);
  }

  /**
   * The origin request for `head`. The edge re-frames requests already; a head it should never send is
   * refused here too, so a wrong Content-Length cannot make the origin read one request as two.
   * Throws when Node or framedFields refuses the head.
   */
  private originRequest(head: HTTPChunk): { req: ClientRequest; length: number | undefined } {
    const { headers, length } = framedFields(this.target.fields(head.headers ?? []));
    const hostname = this.origin.hostname.replace(/^\[|\]$/g, '');
    const tls = this.origin.protocol === 'https:';
    const req = (tls ? httpsRequest : request)({
      protocol: this.origin.protocol,
      hostname,
      port: this.origin.port || (tls ? 443 : 80),
      // SNI names the origin, never the public Host the request carries (Node's default with setHost off).
      ...(tls ? { servername: isIP(hostname) ? '' : hostname } : {}),
      method: head.method,
      path: this.target.path(head.target),
      headers: flatFields(headers),
      agent: this.agent,
      setHost: false,
    });
    return { req, length };
  }

  /** Runs both directions of one exchange against `req`; a failure of either aborts both. */
  private async relay(req: ClientRequest, length: number | undefined, expectsContinue: boolean, exchange: ExchangeDuplex, pipeline: ExchangePipeline): Promise<void> {
    // Failures surface through the response pipeline; this listener only keeps a late second
    // 'error' (after a destroy) from being unhandled.
    req.on('error', () => undefined);
    // A reset from the edge (or a dead session) must reach the origin even when nothing is being read.
    pipeline.onFailed((err) => req.destroy(err));
    const response = this.responseChunks(req, expectsContinue, pipeline);
    flushHeadUnlessBodyReady(req, () => exchange.buffered);
    const fail = (reason: unknown): void => {
      req.destroy();
      const err = toError(reason);
      pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.ORIGIN_ERROR);
    };
    // A body refused half-way (it misses its length) ends both directions at once: the origin would wait
    // for the rest while the response waits for the origin. Other upload failures (an origin that answered
    // early and closed) leave its response to finish first.
    const upload = writeBody(req, exchange.source[Symbol.asyncIterator](), { length, counter: pipeline.bytesIn }).catch((err: unknown) => {
      if (!(err instanceof ProtocolError)) throw err;
      fail(err);
    });
    const results = await Promise.allSettled([upload, exchange.sink(response)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) fail(failed.reason);
  }

  private async *responseChunks(req: ClientRequest, expectsContinue: boolean, pipeline: ExchangePipeline): AsyncGenerator<HTTPChunk> {
    const response = waitForEvent<[IncomingMessage]>(req, 'response').then(
      ([res]) => res,
      (err: Error) => {
        throw new ExchangeResetError(`origin request failed: ${err.message}${certificateHint(err)}`, ResetCode.ORIGIN_ERROR, { cause: err });
      },
    );
    // A 'continue' that never comes (the usual case) leaves this wait to the request's end. Only a
    // request that asked (Expect: 100-continue) waits for one: an origin's unasked-for 100 is dropped
    // (Node reads past it), and the wait cost two promises and a listener on every request.
    if (expectsContinue) {
      const continued = waitForEvent(req, 'continue').then(
        () => true,
        () => false,
      );
      if ((await Promise.race([continued, response.then(() => false)])) === true) {
        yield CONTINUE_HEAD;
      }
    }
    const res = await response;
    pipeline.status = res.statusCode ?? 0;
    const head: HTTPChunk = {
      kind: ChunkKind.HEADERS,
      status: res.statusCode,
      headers: endToEndFields(res.rawHeaders),
    };
    try {
      // Folded when the response is complete already (a small one): the sink unfolds it for an edge that does not read folded chunks.
      yield* incomingChunks(res, head, pipeline.bytesOut, trailerFields, { fold: true });
    } catch (err) {
      throw new ExchangeResetError('origin response broke off', ResetCode.ORIGIN_ERROR, { cause: err });
    }
  }

  /** Closes idle origin connections (and the HTTP/2 session of an h2c:// origin). */
  close(): void {
    this.agent.destroy();
    this.h2?.close();
    this.pooled?.close();
  }
}

/** Whether a request with these fields asks for a 100 Continue (its headers are passed to Node as a flat list, which getHeader() does not see). */
function expectsContinue(headers: readonly Header[]): boolean {
  return headers.some((h) => h.name.toLowerCase() === 'expect' && /100-continue/i.test(h.value));
}

/** Node's codes for an origin certificate that does not verify. */
const CERTIFICATE_ERROR_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The remedy the request log names when the origin's certificate was refused. */
function certificateHint(err: Error): string {
  const code = (err as { code?: string }).code;
  return code && CERTIFICATE_ERROR_CODES.has(code) ? ` (origin certificate refused: ${code}; --origin-insecure accepts it)` : '';
}
