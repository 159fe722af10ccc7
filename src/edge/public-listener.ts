import { createServer as createHttpServer, type Server as HttpServer, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { UsageError, toError } from '../errors.js';
import { TLS_REQUIRED_ERROR } from '../well-known.js';
import type { PublicH2 } from './public-h2.js';

/** The edge's certificate chain and private key, PEM (`--tls-cert`, `--tls-key`). */
export interface TlsIdentity {
  cert: string | Buffer;
  key: string | Buffer;
}

/** The public listener: HTTP/1.1 and h2c, or HTTPS (HTTP/1.1 and h2 by ALPN) with a TlsIdentity. */
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

/** The HTTP/2 client connection preface (RFC 9113 §3.4): an h2c client with prior knowledge starts with it. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** ALPN protocols the HTTPS listener offers, preferred first. A client without ALPN gets HTTP/1.1. */
export const PUBLIC_ALPN_PROTOCOLS = ['h2', 'http/1.1'];

/** Takes over the listener `server` registered for `event`, so a connection can be looked at before it runs. */
function takeListener(server: PublicServer, event: string): (socket: Duplex) => void {
  const [listener] = server.listeners(event) as Array<(socket: Duplex) => void>;
  server.removeAllListeners(event);
  return (socket) => listener.call(server, socket);
}

/**
 * Reads a cleartext connection's first bytes until they tell HTTP/2 prior knowledge (the whole 24-byte
 * preface) from HTTP/1.1 (any byte off the preface: the first one, for every real method). The bytes go
 * back into the socket for the server that takes it. At most the preface plus one read is held, for at
 * most `timeoutMs`; a client that sends the preface in pieces is waited for, one that stops is dropped.
 */
export function sortCleartext(socket: Socket, timeoutMs: number, pending: Set<Duplex>, done: (h2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const finish = (): void => {
    pending.delete(socket);
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('error', drop);
    socket.off('end', drop);
    socket.off('close', finish);
  };
  const drop = (): void => {
    finish();
    socket.destroy();
  };
  const onReadable = (): void => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      seen = seen.byteLength === 0 ? chunk : Buffer.concat([seen, chunk]);
      if (seen.byteLength >= H2_PREFACE.byteLength) break;
    }
    const n = Math.min(seen.byteLength, H2_PREFACE.byteLength);
    if (n === 0) return;
    const h2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (h2 && n < H2_PREFACE.byteLength) return;
    finish();
    socket.unshift(seen);
    done(h2);
  };
  const timer = setTimeout(drop, timeoutMs);
  pending.add(socket);
  socket.on('error', drop);
  socket.on('end', drop);
  // Closed by someone else (the per-address cap at accept, the edge closing): no timer may outlive it.
  socket.on('close', finish);
  socket.on('readable', onReadable);
}

/**
 * Creates the public listener. Cleartext: HTTP/1.1 and h2c with prior knowledge on the same port,
 * told apart by the first bytes (sortCleartext). With TLS, each connection's first byte is looked at
 * before the TLS layer sees it: a TLS handshake goes on to HTTPS, where ALPN picks h2 or HTTP/1.1;
 * anything else (an agent or client speaking plain HTTP to the HTTPS port) gets one plain-text 400
 * saying so, instead of a handshake failure that looks like a dead edge. HTTP/1.1 connections (their
 * requests and upgrades) stay with the returned server; HTTP/2 ones go to `h2`.
 */
export function createPublicServer(tls: TlsIdentity | undefined, options: ServerOptions, h2: PublicH2): PublicServer {
  const sniffTimeoutMs = options.headersTimeout ?? 60_000;
  if (!tls) {
    const server = createHttpServer(options);
    const http1 = takeListener(server, 'connection');
    server.on('connection', (socket: Socket) => sortCleartext(socket, sniffTimeoutMs, h2.pending, (isH2) => (isH2 ? h2.accept(socket) : http1(socket))));
    return server;
  }
  const server = createHttpsServer({ ...options, cert: tls.cert, key: tls.key, ALPNProtocols: PUBLIC_ALPN_PROTOCOLS });
  const http1 = takeListener(server, 'secureConnection');
  server.on('secureConnection', (socket: TLSSocket) => (socket.alpnProtocol === 'h2' ? h2.accept(socket) : http1(socket)));
  // tls.Server handles new sockets in its own 'connection' listener: take it over, call it after the sniff.
  const tlsListener = takeListener(server, 'connection');
  server.on('connection', (socket: Socket) => {
    const drop = (): void => void socket.destroy();
    socket.on('error', drop);
    socket.setTimeout(sniffTimeoutMs, drop);
    socket.once('readable', () => {
      socket.off('error', drop);
      socket.setTimeout(0);
      socket.off('timeout', drop);
      const first = socket.read(1) as Buffer | null;
      if (first === null) return drop();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE_RECORD) return tlsListener(socket);
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

/**
 * Puts a new certificate and key in place (SIGHUP): new TLS connections get them, open ones keep
 * theirs. Throws UsageError, and keeps the old ones, when they cannot be used.
 */
export function reloadTlsIdentity(server: PublicServer, tls: TlsIdentity): void {
  checkTlsIdentity(tls);
  if (!('setSecureContext' in server)) throw new UsageError('the public listener was started without TLS: nothing to reload');
  server.setSecureContext({ cert: tls.cert, key: tls.key });
}
