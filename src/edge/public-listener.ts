import { createServer as createHttpServer, type Server as HttpServer, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { UsageError, toError } from '../errors.js';
import { TLS_REQUIRED_ERROR } from '../well-known.js';

/** The edge's certificate chain and private key, PEM (`--tls-cert`, `--tls-key`). */
export interface TlsIdentity {
  cert: string | Buffer;
  key: string | Buffer;
}

/** The public listener: plain HTTP/1.1, or HTTPS (HTTP/1.1 over TLS) with a TlsIdentity. */
export type PublicServer = HttpServer | HttpsServer;

/** The first byte of every TLS connection: a handshake record. */
const TLS_HANDSHAKE_RECORD = 0x16;

/** Throws UsageError when the certificate or key cannot be used (unreadable PEM, key not matching). */
export function checkTlsIdentity(tls: TlsIdentity): void {
  try {
    createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new UsageError(`cannot use the TLS certificate and key: ${toError(err).message}`, { cause: err });
  }
}

/**
 * Creates the public listener. With TLS, each connection's first byte is looked at before the TLS
 * layer sees it: a TLS handshake goes on to HTTPS; anything else (an agent or client speaking plain
 * HTTP to the HTTPS port) gets one plain-text 400 saying so, instead of a handshake failure that
 * looks like a dead edge. This is also where HTTP/2 (ALPN h2, or h2c prior knowledge) will be told
 * apart from HTTP/1.1.
 */
export function createPublicServer(tls: TlsIdentity | undefined, options: ServerOptions): PublicServer {
  if (!tls) return createHttpServer(options);
  const server = createHttpsServer({ ...options, cert: tls.cert, key: tls.key });
  // tls.Server handles new sockets in its own 'connection' listener: take it over, call it after the sniff.
  const [tlsListener] = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const sniffTimeoutMs = options.headersTimeout ?? 60_000;
  server.on('connection', (socket: Socket) => {
    const drop = (): void => void socket.destroy();
    socket.on('error', drop);
    socket.setTimeout(sniffTimeoutMs, drop);
    socket.once('readable', () => {
      socket.off('error', drop);
      socket.setTimeout(0);
      const first = socket.read(1) as Buffer | null;
      if (first === null) return drop();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE_RECORD) return tlsListener.call(server, socket);
      const body = 'This Jetty edge only speaks HTTPS: use https:// (agents: --edge https://…).\n';
      // Read and discard what the client sent (closing with unread bytes would reset the answer away).
      socket.on('error', drop);
      socket.setTimeout(sniffTimeoutMs, drop);
      socket.resume();
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `x-jetty-error: ${TLS_REQUIRED_ERROR}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  });
  // A failed handshake (wrong CA, port scan) concerns that connection only.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return server;
}
