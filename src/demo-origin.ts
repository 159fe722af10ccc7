import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort } from './address.js';
import { listening } from './admin-server.js';
import { printable } from './printable.js';
import { waitForEvent, type AbortOptions } from './wait.js';

/** `jetty demo-origin` listens here unless told otherwise: loopback only, the quick start's port. */
export const DEMO_ORIGIN_DEFAULT_HOST = '127.0.0.1';
export const DEMO_ORIGIN_DEFAULT_PORT = 3000;
/** Longest header value echoed back, in characters; longer ones are cut with an ellipsis. */
export const DEMO_ECHO_VALUE_MAX_CHARS = 200;

export interface DemoOriginInit {
  host?: string;
  /** 0 = any free port. */
  port?: number;
}

/**
 * A tiny origin for the quick start, instead of `python3 -m http.server` in the clone (which serves
 * `.git/` to the world through the tunnel). It serves no files: every request gets a plain-text page
 * telling what arrived (method, target, headers, body size), which is also what a newcomer wants to
 * see of a tunnel. The request body is counted as it streams and never held: memory per request is
 * the size of the answer, bounded by Node's header limit and DEMO_ECHO_VALUE_MAX_CHARS.
 */
export class DemoOrigin {
  readonly port: number;
  readonly host: string;
  private constructor(private readonly server: Server) {
    const address = server.address() as AddressInfo;
    this.port = address.port;
    this.host = address.address;
  }

  get url(): string {
    return `http://${formatHostPort(this.host, this.port)}`;
  }

  /** Listens; rejects when it cannot (the caller names the flag). */
  static async start(init: DemoOriginInit = {}, options: AbortOptions = {}): Promise<DemoOrigin> {
    const server = createServer((req, res) => answer(req, res));
    await listening(server, init.port ?? DEMO_ORIGIN_DEFAULT_PORT, init.host ?? DEMO_ORIGIN_DEFAULT_HOST, options);
    return new DemoOrigin(server);
  }

  /** Stops listening and ends open connections at once (nothing here is worth waiting for). */
  async close(): Promise<void> {
    const closed = waitForEvent(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }
}

function answer(req: IncomingMessage, res: ServerResponse): void {
  // A client that goes away mid-request is its own business, never this process's.
  req.on('error', () => undefined);
  res.on('error', () => undefined);
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
  req.on('end', () => {
    const cut = (v: string): string => (v.length > DEMO_ECHO_VALUE_MAX_CHARS ? `${v.slice(0, DEMO_ECHO_VALUE_MAX_CHARS)}…` : v);
    const lines = [
      "Hello from Jetty's demo origin: this is what reached it.",
      '',
      `${printable(req.method ?? '')} ${printable(cut(req.url ?? ''))} HTTP/${req.httpVersion}`,
      ...Array.from({ length: req.rawHeaders.length / 2 }, (_, i) => `${printable(req.rawHeaders[2 * i])}: ${printable(cut(req.rawHeaders[2 * i + 1]))}`),
      '',
      `Body: ${bodyBytes} bytes`,
      '',
    ];
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(lines.join('\n'));
  });
}
