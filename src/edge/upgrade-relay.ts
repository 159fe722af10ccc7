import { randomUUID } from 'node:crypto';
import { ServerResponse, validateHeaderName, validateHeaderValue, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipe } from 'it-pipe';
import { ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { pairFields, upgradeProtocol } from '../codec/http-fields.js';
import { AbortError, BadRequestError, LimitError, ProtocolError, TunnelNotFoundError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { TunnelSession } from '../actors/registry.js';
import { abortable } from '../streams/abortable.js';
import { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { responseHead, writeResponse } from '../streams/http-sink.js';
import { resetSocket, socketChunks, writeSocket } from '../streams/socket-pipe.js';
import { sendErrorPage } from './error-pages.js';
import type { EdgeLimits } from './limits.js';
import type { EdgeMetrics } from './metrics.js';
import { formatAuthority, parseAuthority, requestHead, singleHost, tunnelName } from './request-head.js';
import type { Router } from './router.js';

export interface UpgradeRelayInit {
  domain: string;
  router: Router;
  metrics: EdgeMetrics;
  limits: EdgeLimits;
  logger: Logger;
}

/** Where an upgraded connection is: waiting for the origin's answer, switched to raw bytes, or answered normally. */
type UpgradeStatus = 'waiting' | 'switched' | 'answered';

/**
 * A public HTTP/1.1 request with `Connection: upgrade` + `Upgrade: X` for a tunnel (DESIGN.md §6.2).
 * It passes the router's admission and counts as an exchange (Router.enter); its request HEADERS keep
 * the two upgrade fields. The origin's `101` goes to the client as the origin wrote it and the exchange
 * carries raw bytes both ways: socket bytes (from Node's `head` on) → request DATA, the client's FIN →
 * END; response DATA → socket, END → `socket.end()`; a RESET or a broken socket cuts the other side (a TCP RST: resetSocket).
 * Any other answer is an ordinary response written on the raw socket (Connection: close), after which
 * the connection closes. The edge never parses the upgraded protocol: any Upgrade works.
 *
 * Memory per upgraded connection: the exchange's transport window (EXCHANGE_BUFFER_BOUND_BYTES on gRPC,
 * ws-window on WebSocket) plus the socket's high-water marks and one chunk (socket-pipe.ts).
 *
 * Teardown order: exchange.abort (RESET to the agent) → socket cut → counters released → log line.
 */
export class UpgradeRelay {
  private readonly init: UpgradeRelayInit;

  constructor(init: UpgradeRelayInit) {
    this.init = init;
  }

  /** The public server's `upgrade` listener, for requests addressed to a tunnel. */
  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.relay(req, socket as Socket, head);
  };

  private async relay(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const { router, metrics, domain } = this.init;
    // A reset by the client must not become an uncaught 'error': the 'close' that follows tells.
    socket.on('error', () => undefined);
    const trusted = router.isTrusted(req.socket.remoteAddress ?? '');
    const id = router.requestId(req, trusted);
    const fields = { host: '', transport: 'none', upgrade: '' };
    const pipeline = new ExchangePipeline({ id, method: req.method, path: req.url, logger: this.init.logger, fields });
    const state = { status: 'waiting' as UpgradeStatus };
    let failure: Error | undefined;
    let release: (() => void) | undefined;
    try {
      const authority = parseAuthority(singleHost(req));
      fields.host = formatAuthority(authority);
      const name = tunnelName(authority.host, domain);
      if (name === undefined) throw new TunnelNotFoundError('no tunnel of that name is connected to this edge');
      const protocol = upgradeProtocol(pairFields(req.rawHeaders));
      if (protocol === undefined) throw new BadRequestError('Upgrade without Connection: upgrade');
      fields.upgrade = protocol;
      release = router.enter(req, undefined, name, trusted);
      const session = await router.sessionFor(name);
      fields.transport = session.transport;
      const chunk = requestHead(req, authority, randomUUID(), { requestId: id, trusted, upgrade: protocol });
      await this.exchange(req, socket, head, chunk, session, pipeline, state);
    } catch (err) {
      failure = toError(err);
      if (failure instanceof LimitError) metrics.limitRejections.inc({ limit: failure.limit });
      if (state.status === 'waiting' && !socket.destroyed) pipeline.status = this.errorPage(req, socket, failure);
      else resetSocket(socket);
    } finally {
      release?.();
    }
    router.record(pipeline.finish(failure), fields.transport);
  }

  /** The public error page of `err` on the raw socket (there is no ServerResponse in an 'upgrade' event). */
  private errorPage(req: IncomingMessage, socket: Socket, err: Error): number {
    const res = rawResponse(req, socket);
    if (err instanceof LimitError && err.retryAfterS !== undefined) res.setHeader('retry-after', err.retryAfterS);
    return sendErrorPage(res, err);
  }

  /** Opens the exchange and runs both directions until both are done; throws when the exchange fails. */
  private async exchange(
    req: IncomingMessage,
    socket: Socket,
    first: Buffer,
    head: HTTPChunk,
    session: TunnelSession,
    pipeline: ExchangePipeline,
    state: { status: UpgradeStatus },
  ): Promise<void> {
    const exchange = await this.init.router.openExchange(session, head, socket, pipeline);
    // Until the origin answers, the ordinary idle timeout; once switched, upgrade-idle-timeout.
    let onIdle = pipeline.idleAction(this.init.limits.idleTimeoutMs);
    socket.setTimeout(this.init.limits.idleTimeoutMs, onIdle);
    // A client that leaves (or resets) before both directions are done cancels the exchange.
    let done = false;
    const onClose = (): void => {
      // Both halves closed in order (FIN each way) is the clean end of a switched connection.
      if (!done && !(socket.readableEnded && socket.writableFinished)) pipeline.abort(new AbortError('public client went away'), ResetCode.CANCEL);
    };
    // A failed exchange cuts the client at once, even while a write waits for a reader that never reads.
    pipeline.onFailed(() => {
      if (state.status !== 'waiting') resetSocket(socket);
    });
    socket.once('close', onClose);
    if (socket.destroyed) onClose();
    let switched!: (yes: boolean) => void;
    const decided = new Promise<boolean>((resolve) => (switched = resolve));
    // Nothing of the client's is read before the switch: bytes after the head belong to the new protocol.
    async function* upload(): AsyncGenerator<HTTPChunk> {
      yield head;
      if (await decided) yield* socketChunks(socket, first, pipeline.bytesIn);
    }
    const uploaded = pipe(
      upload(),
      (source) => abortable(source, pipeline.failed),
      (source) => exchange.sink(source),
    ).catch((err: unknown) => pipeline.abort(toError(err), ResetCode.CANCEL));
    try {
      const source = exchange.source[Symbol.asyncIterator]();
      const answer = await finalHead(source);
      if (answer.status === 101) {
        writeSwitch(socket, answer);
        pipeline.status = 101;
        state.status = 'switched';
        socket.off('timeout', onIdle);
        onIdle = pipeline.idleAction(this.init.limits.upgradeIdleTimeoutMs);
        socket.setTimeout(this.init.limits.upgradeIdleTimeoutMs, onIdle);
        switched(true);
        await writeSocket(socket, source, pipeline.bytesOut);
        await uploaded;
      } else {
        switched(false);
        state.status = 'answered';
        const res = rawResponse(req, socket);
        pipeline.status = await writeResponse(res, prepend(answer, source), () => exchange.buffered, pipeline.bytesOut);
        await uploaded;
      }
      // A RESET that crossed our END leaves the exchange failed although both loops ended.
      if (exchange.error) throw exchange.error;
      done = true;
    } catch (err) {
      switched(false);
      const e = toError(err);
      pipeline.abort(e, e instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.CANCEL);
      throw exchange.error ?? e;
    } finally {
      socket.off('close', onClose);
      socket.off('timeout', onIdle);
      socket.setTimeout(0);
    }
  }
}

/** The first HEADERS of a response that is not 100-199 other than 101 (those are dropped: the client asked for no 1xx). */
async function finalHead(source: AsyncIterator<HTTPChunk>): Promise<HTTPChunk> {
  for (;;) {
    const head = await responseHead(source);
    if (head.status === 101 || head.status! >= 200) return head;
  }
}

/** `head`, then the rest of `source`. */
function prepend(head: HTTPChunk, source: AsyncIterator<HTTPChunk>): AsyncIterator<HTTPChunk> {
  let sent = false;
  return {
    next: () => {
      if (sent) return source.next();
      sent = true;
      return Promise.resolve({ value: head, done: false });
    },
  };
}

/**
 * Writes the origin's 101 head as it wrote it (its Connection, Upgrade, Sec-WebSocket-* and any other
 * fields). Every name and value is checked first: a field Node would refuse (a CR or LF in a value) is
 * the agent's ProtocolError, and nothing is written.
 */
function writeSwitch(socket: Socket, head: HTTPChunk): void {
  let text = 'HTTP/1.1 101 Switching Protocols\r\n';
  for (const h of head.headers ?? []) {
    try {
      validateHeaderName(h.name);
      validateHeaderValue(h.name, h.value);
    } catch (err) {
      throw new ProtocolError('101 head field is not valid HTTP', { cause: err });
    }
    text += `${h.name}: ${h.value}\r\n`;
  }
  socket.write(`${text}\r\n`, 'latin1');
}

/**
 * A ServerResponse on an upgrade's raw socket, as Node's server makes one per request: framing
 * (Content-Length or chunked), header checks and HEAD handling come from Node, and the connection
 * closes after it (Connection: close).
 */
function rawResponse(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  // As Node's server does for Connection: close: our FIN once the response is out, then the socket goes
  // without waiting for the client's (a client that never closes would otherwise hold it, and the edge's close).
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  return res;
}
