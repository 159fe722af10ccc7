import type { Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Metadata } from '@grpc/grpc-js';
import { GRPC_CONNECTION_WINDOW_BYTES, GRPC_MAX_FRAME_BYTES, GRPC_STREAM_WINDOW_BYTES } from '../streams/grpc-service.js';

/** Metadata key the edge stamps on every incoming gRPC call: the HTTP/2 connection it arrived on. */
export const CONNECTION_STAMP_KEY = 'jetty-edge-connection';

/**
 * The HTTP/2 connections of the edge's gRPC server, which grpc-js hides from call handlers.
 *
 * Which connection a call arrived on: a 'stream' listener placed ahead of grpc-js's writes the
 * connection's id into the stream's headers under CONNECTION_STAMP_KEY, overwriting whatever the client
 * sent, and grpc-js builds the call's metadata from those same headers. Chosen over `call.getPeer()`
 * (the remote address and port): two live connections to different local addresses of the edge can
 * share a remote address and port, and ports are reused; the HTTP/2 session object is exact.
 * test/edge/grpc-endpoint.test.ts fails if a grpc-js upgrade stops carrying the stamp.
 *
 * Windows: grpc-js's server takes no window option (nor sets TCP_NODELAY), so the edge raises each
 * session's windows itself (after its agent is admitted: raiseWindows); without it a stream moves at
 * most 64 KiB per round trip.
 */
export class GrpcConnections {
  private nextId = 0;
  private readonly ids = new WeakMap<ServerHttp2Session, string>();
  private readonly sessions = new Map<string, ServerHttp2Session>();

  /** Hooks the HTTP/2 servers of a bound grpc-js server. */
  attach(servers: Iterable<Http2Server>): void {
    for (const h2 of servers) {
      // Small frames (HEADERS, END, control) must not wait for Nagle + delayed ACK (≈40 ms).
      h2.on('connection', (socket: Socket) => socket.setNoDelay(true));
      h2.on('session', (session: ServerHttp2Session) => {
        const id = String(++this.nextId);
        this.ids.set(session, id);
        this.sessions.set(id, session);
        session.once('close', () => this.sessions.delete(id));
      });
      h2.prependListener('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
        headers[CONNECTION_STAMP_KEY] = (stream.session && this.ids.get(stream.session as ServerHttp2Session)) || '';
      });
    }
  }

  /** The connection id stamped on a call's metadata; '' when there is none. */
  static of(metadata: Metadata): string {
    const v = metadata.get(CONNECTION_STAMP_KEY);
    return v.length === 1 ? String(v[0]) : '';
  }

  /** The remote address of connection `id`; '' once it is gone. */
  addressOf(id: string): string {
    return this.sessions.get(id)?.socket?.remoteAddress ?? '';
  }

  /**
   * Raises the stream and connection windows of connection `id` (GRPC_*_WINDOW_BYTES) and the frame
   * size it accepts (GRPC_MAX_FRAME_BYTES). Called once
   * its agent is admitted: until then a connection gets HTTP/2's 64 KiB, so a peer without a valid
   * token cannot make the edge buffer more than that.
   */
  raiseWindows(id: string): void {
    const session = this.sessions.get(id);
    if (!session || session.destroyed || session.closed) return;
    session.settings({ initialWindowSize: GRPC_STREAM_WINDOW_BYTES, maxFrameSize: GRPC_MAX_FRAME_BYTES });
    session.setLocalWindowSize(GRPC_CONNECTION_WINDOW_BYTES);
  }
}
