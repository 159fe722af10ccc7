import { ChunkKind, ResetCode, type ExchangeKind, type HTTPChunk } from '../codec/http-chunk.js';
import { ProtocolError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { ExchangePipeline } from '../streams/exchange-pipeline.js';
import type { AbortOptions } from '../wait.js';
import type { RequestRecord } from './origin-proxy.js';

/** The agent's answer to a stream or datagram open, once its origin socket is up. */
export const PORT_ANSWER: HTTPChunk = Object.freeze({ kind: ChunkKind.HEADERS, status: 200, headers: [] }) as HTTPChunk;

/**
 * What TcpOrigin and UdpOrigin share for one exchange: the pipeline (log line with `fields`),
 * cancellation by `options.signal`, the refusal of any kind but `kind`, and the reset code of a
 * failure (PROTOCOL_ERROR for the edge's fault, else ORIGIN_ERROR). `relay` runs the origin side.
 * Resolves with the log entry; never rejects.
 */
export async function servePortExchange(
  head: HTTPChunk,
  exchange: ExchangeDuplex,
  init: { kind: ExchangeKind; logger: Logger; fields: Record<string, unknown> },
  relay: (pipeline: ExchangePipeline) => Promise<void>,
  options: AbortOptions = {},
): Promise<RequestRecord> {
  const pipeline = new ExchangePipeline({ id: head.exchangeId, method: head.method, path: head.target, logger: init.logger, fields: init.fields });
  pipeline.attach(exchange);
  const stopCancel = pipeline.cancelOn(options.signal);
  try {
    if (pipeline.accepts(head, [init.kind])) await relay(pipeline);
  } catch (err) {
    const e = toError(err);
    pipeline.abort(e, e instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.ORIGIN_ERROR);
  } finally {
    stopCancel();
  }
  return pipeline.finish(exchange.error);
}
