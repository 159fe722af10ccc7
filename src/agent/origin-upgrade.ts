import { request, type ClientRequest, type ClientRequestArgs, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ChunkKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { endToEndFields, flatFields, framedFields, pairFields, upgradeFields } from '../codec/http-fields.js';
import { ExchangeResetError, ProtocolError, toError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { incomingChunks } from '../streams/http-source.js';
import { resetSocket, socketChunks, writeSocket } from '../streams/socket-pipe.js';

/** How the origin answered an upgrade request: it switched (101), or it sent an ordinary response. */
type OriginAnswer = { switched: true; res: IncomingMessage; socket: Socket; head: Buffer } | { switched: false; res: IncomingMessage };

/**
 * A connection to the origin that stays open for writing after the origin's FIN, so a half-close
 * crosses the tunnel as END (Node's default ends our side too). No Nagle delay: a switched connection
 * is often interactive (one small WebSocket message waiting on a delayed ACK costs 40 ms).
 */
function halfOpenConnection(options: ClientRequestArgs): Socket {
  if (options.protocol !== 'https:') return connect({ ...(options as NetConnectOpts), allowHalfOpen: true, noDelay: true });
  // TLS: the request's servername and rejectUnauthorized reach tls.connect with the rest of its options.
  // Node's tls.connect passes allowHalfOpen to its TLSSocket; its type does not name it.
  const tlsOptions: ConnectionOptions & { allowHalfOpen: boolean } = { ...(options as ConnectionOptions), allowHalfOpen: true, ALPNProtocols: ['http/1.1'] };
  const socket = tlsConnect(tlsOptions);
  socket.setNoDelay(true);
  return socket;
}

export interface RelayUpgradeOptions {
  /** https:// origin: accept a certificate that does not verify (--origin-insecure). Default false. */
  originInsecure?: boolean;
}

/**
 * The agent's half of an upgrade (DESIGN.md §6.2): the request goes to the origin with its
 * `Connection: upgrade` and `Upgrade` fields and no body. On the origin's 101 the HEADERS 101 carry the
 * origin's raw fields (Sec-WebSocket-Accept, -Protocol, -Extensions, any others) and the exchange
 * carries raw bytes both ways: origin socket → response DATA (its FIN → END), request DATA → origin
 * socket (END → `end()`), with the transport's flow control on one side and the socket's on the other.
 * Any other answer is an ordinary response; the request side must then end with no bytes.
 *
 * Teardown: a failure of either direction, or of the exchange, destroys the origin request and cuts its
 * socket (a TCP RST, so the origin sees an abort, not a clean end);
 * the exchange is aborted with ORIGIN_ERROR (PROTOCOL_ERROR for a head or chunk the agent refuses).
 */
export async function relayUpgrade(
  origin: URL,
  head: HTTPChunk,
  protocol: string,
  exchange: ExchangeDuplex,
  pipeline: ExchangePipeline,
  options: RelayUpgradeOptions = {},
): Promise<void> {
  let req: ClientRequest;
  try {
    const { headers } = framedFields(head.headers ?? []);
    const tls = origin.protocol === 'https:';
    const hostname = origin.hostname.replace(/^\[|\]$/g, '');
    req = (tls ? httpsRequest : request)({
      protocol: origin.protocol,
      hostname,
      port: origin.port || (tls ? 443 : 80),
      method: head.method,
      path: head.target,
      headers: flatFields([...headers, ...upgradeFields(protocol)]),
      // No agent: with one (even `agent: false`, a fresh one) Node ignores createConnection.
      createConnection: halfOpenConnection,
      // TLS: SNI and the certificate check name the origin, never the public Host the request carries.
      ...(tls ? { servername: isIP(hostname) ? '' : hostname, rejectUnauthorized: !options.originInsecure } : {}),
      setHost: false,
    });
  } catch (err) {
    // Nothing reached the origin: the head was one Node (or framedFields) refuses.
    pipeline.abort(new ProtocolError('request head is not valid HTTP', { cause: err }), ResetCode.PROTOCOL_ERROR);
    return;
  }
  let upgraded: Socket | undefined;
  // Failures surface through the answer; this keeps a late 'error' after a destroy from being unhandled.
  req.on('error', () => undefined);
  const answer = new Promise<OriginAnswer>((resolve, reject) => {
    req.once('upgrade', (res: IncomingMessage, socket: Socket, rest: Buffer) => {
      upgraded = socket;
      socket.on('error', () => undefined);
      resolve({ switched: true, res, socket, head: rest });
    });
    req.once('response', (res: IncomingMessage) => resolve({ switched: false, res }));
    req.once('error', (err) => reject(new ExchangeResetError(`origin request failed: ${err.message}`, ResetCode.ORIGIN_ERROR, { cause: err })));
  });
  answer.catch(() => undefined);
  // A reset from the edge (or a dead session) reaches the origin even when nothing is being read.
  pipeline.onFailed((err) => {
    req.destroy(err);
    if (upgraded) resetSocket(upgraded);
  });
  req.end();

  async function* response(): AsyncGenerator<HTTPChunk> {
    const a = await answer;
    pipeline.status = a.res.statusCode ?? 0;
    if (!a.switched) {
      yield* incomingChunks(a.res, { kind: ChunkKind.HEADERS, status: a.res.statusCode, headers: endToEndFields(a.res.rawHeaders) }, pipeline.bytesOut);
      return;
    }
    yield { kind: ChunkKind.HEADERS, status: 101, headers: pairFields(a.res.rawHeaders) };
    try {
      yield* socketChunks(a.socket, a.head, pipeline.bytesOut);
    } catch (err) {
      throw new ExchangeResetError('origin connection broke off', ResetCode.ORIGIN_ERROR, { cause: err });
    }
  }

  async function upload(): Promise<void> {
    const a = await answer;
    const source = exchange.source[Symbol.asyncIterator]();
    if (a.switched) {
      await writeSocket(a.socket, source, pipeline.bytesIn);
      return;
    }
    // Not switched: the edge sends END and nothing else, since the client's bytes belong to a switch.
    const next = await source.next();
    if (!next.done) throw new ProtocolError('request bytes on an upgrade the origin refused');
  }

  const results = await Promise.allSettled([upload(), exchange.sink(response())]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    req.destroy();
    if (upgraded) resetSocket(upgraded);
    const err = toError(failed.reason);
    pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.ORIGIN_ERROR);
  }
}
