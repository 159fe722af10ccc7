import { createServer as createH2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream, type Settings } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

/** A stream handler of the HTTP/2 test origin. */
export type H2Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

export interface H2OriginServer {
  server: Http2Server;
  port: number;
  /** `h2c://127.0.0.1:PORT` */
  url: URL;
  /** The handler of the next streams; tests swap it. */
  handler: H2Handler;
  /** Sessions accepted so far. */
  readonly sessionCount: number;
  /** Sessions open now. */
  readonly openSessions: number;
  /** Sends GOAWAY on every open session and closes it (as a restarting server does). */
  goAway(): void;
  close(): Promise<void>;
}

/** A cleartext HTTP/2 origin (prior knowledge) on 127.0.0.1:0; every session is destroyed on close. */
export async function startH2Origin(settings: Settings = {}): Promise<H2OriginServer> {
  const server = createH2Server({ settings });
  const sessions = new Set<ServerHttp2Session>();
  let sessionCount = 0;
  server.on('session', (s) => {
    sessionCount++;
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const origin: H2OriginServer = {
    server,
    port,
    url: new URL(`h2c://127.0.0.1:${port}`),
    handler: (stream) => stream.respond({ ':status': 200 }, { endStream: true }),
    get sessionCount() {
      return sessionCount;
    },
    get openSessions() {
      return sessions.size;
    },
    goAway: () => {
      for (const s of sessions) s.close();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    origin.handler(stream, headers);
  });
  return origin;
}

export interface HttpsOrigin {
  server: HttpsServer;
  port: number;
  close(): Promise<void>;
}

/** An HTTPS origin on 127.0.0.1:0 with the given certificate (not trusted by the system roots). */
export async function startHttpsOrigin(cert: Buffer, key: Buffer, handler: RequestListener): Promise<HttpsOrigin> {
  const server = createHttpsServer({ cert, key }, handler);
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Reads a server stream (or any readable) to its end. */
export async function readStream(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const d of stream) parts.push(d);
  return Buffer.concat(parts);
}
