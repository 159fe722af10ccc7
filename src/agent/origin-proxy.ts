import { Agent as HttpAgent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { ChunkKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields, flatFields } from '../codec/http-fields.js';
import { ExchangeResetError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { writeBody, flushHeadUnlessBodyReady } from '../streams/http-sink.js';
import { incomingChunks, type ByteCounter } from '../streams/http-source.js';

/** Idle keep-alive connections kept to the origin. */
export const ORIGIN_MAX_FREE_SOCKETS = 64;

/** What the agent reports of one finished exchange (its log line, and the live status view). */
export interface RequestRecord {
  id: string | undefined;
  method: string | undefined;
  path: string | undefined;
  status: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  err?: string;
}

export interface OriginProxyInit {
  /** The local service, e.g. http://localhost:3000. */
  origin: URL;
  logger: Logger;
}

const CONTINUE_HEAD: HTTPChunk = Object.freeze({ kind: ChunkKind.HEADERS, status: 100, headers: [] }) as HTTPChunk;

/**
 * Serves exchanges against the local service (the edge has already stripped hop-by-hop fields and
 * Transfer-Encoding from the request head): the request chunks become an HTTP/1.1 request (Node
 * frames the body: Content-Length when the client gave one, chunked otherwise, never both), the
 * response becomes chunks. A reset from either side destroys the origin request at once.
 */
export class OriginProxy {
  private readonly origin: URL;
  private readonly log: Logger;
  private readonly agent: HttpAgent;
  /** Called after every exchange (the agent's status view listens here). */
  onRequest: ((entry: RequestRecord) => void) | undefined;

  constructor(init: OriginProxyInit) {
    this.origin = init.origin;
    this.log = init.logger;
    this.agent = new HttpAgent({ keepAlive: true, maxFreeSockets: ORIGIN_MAX_FREE_SOCKETS, noDelay: true });
  }

  /** Handles one exchange whose request HEADERS are `head`; resolves when it is over, never rejects. */
  async serve(head: HTTPChunk, exchange: ExchangeDuplex): Promise<void> {
    const started = performance.now();
    const up: ByteCounter = { bytes: 0 };
    const down: ByteCounter = { bytes: 0 };
    let status = 0;
    const req = request({
      protocol: this.origin.protocol,
      hostname: this.origin.hostname.replace(/^\[|\]$/g, ''),
      port: this.origin.port || 80,
      method: head.method,
      path: head.target,
      headers: flatFields(head.headers),
      agent: this.agent,
      setHost: false,
    });
    // Failures surface through the response pipeline; this listener only keeps a late second
    // 'error' (after a destroy) from being unhandled.
    req.on('error', () => undefined);
    // A reset from the edge (or a dead session) must reach the origin even when nothing is being read.
    void exchange.closed.then(() => {
      if (exchange.error) req.destroy(exchange.error);
    });
    const response = this.responseChunks(req, (s) => (status = s), down);
    flushHeadUnlessBodyReady(req, () => exchange.buffered);
    const upload = writeBody(req, exchange.source[Symbol.asyncIterator](), up);
    const results = await Promise.allSettled([upload, exchange.sink(response)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      req.destroy();
      exchange.abort(toError(failed.reason), ResetCode.ORIGIN_ERROR);
    }
    const entry: RequestRecord = {
      id: head.headers?.find((h) => h.name === 'X-Request-Id')?.value ?? head.exchangeId,
      method: head.method,
      path: head.target,
      status,
      bytesIn: up.bytes,
      bytesOut: down.bytes,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    if (exchange.error) entry.err = exchange.error.message;
    this.log.info(entry, exchange.error ? 'request failed' : 'request');
    this.onRequest?.(entry);
  }

  private async *responseChunks(
    req: ClientRequest,
    onStatus: (status: number) => void,
    counter: ByteCounter,
  ): AsyncGenerator<HTTPChunk> {
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (err) =>
        reject(new ExchangeResetError(`origin request failed: ${err.message}`, ResetCode.ORIGIN_ERROR, { cause: err })),
      );
    });
    const continued = new Promise<void>((resolve) => req.once('continue', resolve));
    if ((await Promise.race([continued.then(() => true), response.then(() => false)])) === true) {
      yield CONTINUE_HEAD;
    }
    const res = await response;
    onStatus(res.statusCode ?? 0);
    const head: HTTPChunk = {
      kind: ChunkKind.HEADERS,
      status: res.statusCode,
      headers: endToEndFields(res.rawHeaders),
    };
    try {
      yield* incomingChunks(res, head, counter);
    } catch (err) {
      throw new ExchangeResetError('origin response broke off', ResetCode.ORIGIN_ERROR, { cause: err });
    }
  }

  /** Closes idle origin connections. */
  close(): void {
    this.agent.destroy();
  }
}
