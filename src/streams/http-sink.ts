import type { OutgoingMessage, ServerResponse } from 'node:http';
import { ChunkKind, type HTTPChunk } from '../codec/http-chunk.js';
import { flatFields } from '../codec/http-fields.js';
import { ProtocolError, TransportClosedError } from '../errors.js';
import type { ByteCounter } from './http-source.js';

function waitDrain(out: OutgoingMessage): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('drain', onDrain);
      reject(new TransportClosedError('peer closed while writing'));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

/**
 * Writes DATA and TRAILERS to an outgoing message (origin request or public response) with
 * backpressure: at most one `write()` beyond the socket's high-water mark is in flight. Ends the
 * message when `chunks` is done.
 */
export async function writeBody(
  out: OutgoingMessage,
  chunks: AsyncIterator<HTTPChunk>,
  counter?: ByteCounter,
): Promise<void> {
  for (;;) {
    const { value: chunk, done } = await chunks.next();
    if (done) break;
    if (chunk.kind === ChunkKind.DATA) {
      const data = chunk.data!;
      if (counter) counter.bytes += data.byteLength;
      if (out.destroyed) throw new TransportClosedError('peer closed while writing');
      if (!out.write(data)) await waitDrain(out);
    } else if (chunk.kind === ChunkKind.TRAILERS) {
      out.addTrailers((chunk.headers ?? []).map((h) => [h.name, h.value] as [string, string]));
    } else {
      throw new ProtocolError(`unexpected ${ChunkKind[chunk.kind]} chunk in a body`);
    }
  }
  await endMessage(out);
}

/**
 * Ends an outgoing message and resolves once it is finished. `end(callback)` alone never calls back
 * when the message fails first (an origin that refuses the connection), so 'close' settles it too.
 */
function endMessage(out: OutgoingMessage): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (out.destroyed) {
      reject(new TransportClosedError('peer closed before the end of the body'));
      return;
    }
    const onFinish = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('finish', onFinish);
      if (out.writableFinished) resolve();
      else reject(new TransportClosedError('peer closed before the end of the body'));
    };
    out.once('finish', onFinish);
    out.once('close', onClose);
    out.end();
  });
}

/**
 * Sends the head right away unless the first body chunk is already here: a client then sees the
 * status of an event stream or long poll before any body exists, while a small message still leaves
 * as one packet.
 */
export function flushHeadUnlessBodyReady(out: OutgoingMessage, bodyReady: () => boolean): void {
  if (!bodyReady()) out.flushHeaders();
}

/**
 * Writes a response (HEADERS, DATA*, [TRAILERS]) to a public client. 1xx HEADERS (100 Continue) are
 * relayed before the final head. If `chunks` throws, the caller destroys `res`: the client then sees a
 * cut message, never a complete-looking one.
 */
export async function writeResponse(
  res: ServerResponse,
  chunks: AsyncIterator<HTTPChunk>,
  bodyReady: () => boolean,
  counter?: ByteCounter,
): Promise<number> {
  for (;;) {
    const { value: head, done } = await chunks.next();
    if (done) throw new ProtocolError('response ended before its HEADERS');
    if (head.kind !== ChunkKind.HEADERS || !head.status) throw new ProtocolError('response must start with HEADERS');
    if (head.status < 200) {
      if (head.status === 100) res.writeContinue();
      continue;
    }
    res.writeHead(head.status, flatFields(head.headers));
    flushHeadUnlessBodyReady(res, bodyReady);
    await writeBody(res, chunks, counter);
    return head.status;
  }
}
