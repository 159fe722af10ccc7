import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipe } from 'it-pipe';
import { ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import type { Registry } from '../actors/registry.js';
import { AbortError, BadRequestError, TunnelNotFoundError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { incomingChunks, type ByteCounter } from '../streams/http-source.js';
import { writeResponse } from '../streams/http-sink.js';
import { sendErrorPage } from './error-pages.js';
import { requestHead, singleHost, tunnelName } from './request-head.js';

/** Answers requests addressed to the edge's own host (discovery, the landing page). */
export type OwnHostHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface RouterInit {
  domain: string;
  registry: Registry;
  logger: Logger;
  ownHost: OwnHostHandler;
}

/**
 * Public HTTP → tunnel. Per request: route by Host, open an exchange on the agent's session, then
 * two pipelines run until both finish: request body → exchange, exchange → response. Every failure
 * aborts the whole exchange (the origin request on the agent, the public response here).
 *
 * Teardown order per request: exchange.abort (RESET + Cancel to the agent) → request destroyed →
 * response destroyed (cut, never completed) → log line.
 */
export class Router {
  private readonly init: RouterInit;
  private readonly log: Logger;

  constructor(init: RouterInit) {
    this.init = init;
    this.log = init.logger;
  }

  /** The `request` / `checkContinue` listener of the public server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    void this.route(req, res);
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const id = randomUUID();
    let host: string;
    let name: string | undefined;
    try {
      host = singleHost(req);
      name = tunnelName(host, this.init.domain);
    } catch (err) {
      this.finish(req, id, '', 400, started, 0, 0, err);
      sendErrorPage(res, err);
      return;
    }
    if (name === undefined) {
      this.init.ownHost(req, res);
      return;
    }
    const up: ByteCounter = { bytes: 0 };
    const down: ByteCounter = { bytes: 0 };
    let status = 0;
    let failure: Error | undefined;
    try {
      const session = this.init.registry.lookup(name);
      if (!session) throw new TunnelNotFoundError(`no tunnel named "${name}" is connected to this edge`);
      const head = requestHead(req, host, id);
      const exchange = await session.openExchange(head);
      status = await this.relay(req, res, head, exchange, up, down);
    } catch (err) {
      failure = toError(err);
      if (res.headersSent) {
        res.destroy(failure);
      } else {
        status = sendErrorPage(res, failure, failure instanceof BadRequestError ? failure.message : undefined);
      }
    }
    this.finish(req, id, host, status, started, up.bytes, down.bytes, failure);
  }

  private async relay(
    req: IncomingMessage,
    res: ServerResponse,
    head: HTTPChunk,
    exchange: ExchangeDuplex,
    up: ByteCounter,
    down: ByteCounter,
  ): Promise<number> {
    // A client that leaves before the response is complete cancels the exchange (and the origin request).
    const onClose = (): void => {
      if (!res.writableFinished) exchange.abort(new AbortError('public client went away'), ResetCode.CANCEL);
    };
    res.on('close', onClose);
    if (res.destroyed) onClose();
    const upload = pipe(incomingChunks(req, head, up), (source) => exchange.sink(source));
    // The upload fails on its own only when the client leaves; the exchange abort then ends the download.
    upload.catch((err: unknown) => exchange.abort(toError(err), ResetCode.CANCEL));
    try {
      return await writeResponse(res, exchange.source[Symbol.asyncIterator](), () => exchange.buffered, down);
    } catch (err) {
      exchange.abort(toError(err), ResetCode.CANCEL);
      req.destroy();
      throw err;
    } finally {
      res.off('close', onClose);
    }
  }

  private finish(
    req: IncomingMessage,
    id: string,
    host: string,
    status: number,
    started: number,
    bytesIn: number,
    bytesOut: number,
    err: unknown,
  ): void {
    const entry = {
      id,
      host,
      method: req.method,
      path: req.url,
      status,
      bytesIn,
      bytesOut,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    if (err) this.log.info({ ...entry, err: toError(err).message }, 'request failed');
    else this.log.info(entry, 'request');
  }
}
