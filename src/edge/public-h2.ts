import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS of a public HTTP/2 connection. Node's default (2^32 − 1) would let one
 * client hold any number of exchanges; each stalled stream holds up to its window in memory
 * (DESIGN.md §5), so streams × window is the bound per connection.
 */
export const PUBLIC_H2_MAX_CONCURRENT_STREAMS = 100;
/**
 * nghttp2's memory budget per public session, MiB (Node's `maxSessionMemory`): beyond it new streams are
 * refused with ENHANCE_YOUR_CALM. Above streams × default window (100 × 64 KiB) plus headers.
 */
export const PUBLIC_H2_MAX_SESSION_MEMORY_MB = 16;
/** How many times `max-header-count` nghttp2 lets a stream's head hold before resetting it (the router 431s past 1×). */
export const H2_HEADER_PAIRS_SLACK = 2;
/** Pseudo-header fields a request carries on top of its header lines (:method, :path, :scheme, :authority). */
export const H2_PSEUDO_HEADER_COUNT = 4;

/** What each field adds to a header list's size beyond its name and value (RFC 9113 §6.5.2). */
export const H2_FIELD_OVERHEAD_BYTES = 32;

/** An HTTP/2 request head's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it, from the compat layer's rawHeaders. */
export function h2HeadBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) bytes += Buffer.byteLength(rawHeaders[i]) + Buffer.byteLength(rawHeaders[i + 1]) + H2_FIELD_OVERHEAD_BYTES;
  return bytes;
}

/** What a public HTTP/2 session may hold, taken from the edge limits. */
export interface PublicH2Init {
  /** Request head bytes (SETTINGS_MAX_HEADER_LIST_SIZE; nghttp2 refuses the stream beyond). */
  maxHeaderBytes: number;
  /** Request header lines (the pseudo-headers come on top). */
  maxHeaderCount: number;
  /** A session with no open stream and no frame for this long is closed, ms (keep-alive timeout). */
  idleTimeoutMs: number;
  /** Each stream (a request) and Expect: 100-continue. */
  onRequest: (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  logger: Logger;
}

/**
 * The HTTP/2 side of the public port. Its server never listens: the public listener hands it the
 * connections it has recognised (h2c prior knowledge, or TLS with ALPN h2). It keeps the sessions,
 * since `server.close()` neither ends them nor stops their new streams (DESIGN.md §5): drain sends
 * GOAWAY and lets open streams finish, close destroys them.
 */
export class PublicH2 {
  private readonly server: Http2Server;
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Cleartext connections whose first bytes are still awaited (sortCleartext): not yet HTTP/1.1 or HTTP/2. */
  readonly pending = new Set<Duplex>();
  private readonly log: Logger;
  private draining = false;

  constructor(init: PublicH2Init) {
    this.log = init.logger;
    this.server = createServer({
      maxSessionMemory: PUBLIC_H2_MAX_SESSION_MEMORY_MB,
      // Room beyond the limit so the router can answer a few lines too many with a 431; far beyond it,
      // nghttp2 resets the stream (ENHANCE_YOUR_CALM) before the head is held in full.
      maxHeaderListPairs: init.maxHeaderCount * H2_HEADER_PAIRS_SLACK + H2_PSEUDO_HEADER_COUNT,
      // The edge never pushes, and a peer's SETTINGS flood or ping flood ends its own session only.
      settings: { maxConcurrentStreams: PUBLIC_H2_MAX_CONCURRENT_STREAMS, maxHeaderListSize: init.maxHeaderBytes, enablePush: false },
    });
    this.server.on('request', init.onRequest);
    this.server.on('checkContinue', init.onRequest);
    this.server.on('session', (session: ServerHttp2Session) => this.track(session, init.idleTimeoutMs));
    // A session's protocol error (bad frame, flood) concerns that connection only.
    this.server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'public h2 session error'));
  }

  /** Sessions open now. */
  get size(): number {
    return this.sessions.size;
  }

  /** Serves HTTP/2 on a connection whose first bytes (left unread) are the client preface, or a TLS socket that chose h2. */
  accept(socket: Duplex): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    // The public listener is half-open (HTTP/1.1 needs it); an HTTP/2 session is not. Left half-open, a
    // client gone with its streams stalled on flow control would never be noticed: nothing is written.
    socket.allowHalfOpen = false;
    this.server.emit('connection', socket);
  }

  private track(session: ServerHttp2Session, idleTimeoutMs: number): void {
    this.sessions.add(session);
    let open = 0;
    session.on('stream', (stream) => {
      open++;
      stream.once('close', () => open--);
    });
    // The session timer sees frames either way; a quiet stream (a long poll) is the router's idle timeout's business.
    session.setTimeout(idleTimeoutMs, () => {
      if (open === 0) session.close();
    });
    session.on('error', (err: Error) => this.log.debug({ err: err.message }, 'public h2 session error'));
    session.once('close', () => this.sessions.delete(session));
  }

  /** GOAWAY to every session: streams already open finish, new ones go to another connection. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions) s.close();
  }

  /** Destroys every session now (their streams are reset), and every connection not yet sorted. */
  close(): void {
    this.draining = true;
    for (const s of this.sessions) s.destroy();
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
  }
}
