import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { waitFor } from './harness.js';

/**
 * A public client that speaks HTTP/1.1 by hand, so tests can send what Node's client never would and
 * see the exact bytes the edge answers with (framing fields, a second response, a cut).
 */
export class RawHttpClient {
  readonly socket: Socket;
  /** Everything received so far, as latin1 text (bytes kept one for one). */
  received = '';
  ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.received += d.toString('latin1')));
    socket.on('close', () => (this.ended = true));
    // Tests look at `ended` and `received`; a reset from the edge is one of the outcomes they expect.
    socket.on('error', () => undefined);
  }

  /** Connects to the edge's public port, from `localAddress` when given (another client address). */
  static async connect(port: number, localAddress?: string): Promise<RawHttpClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    await once(socket, 'connect');
    return new RawHttpClient(socket);
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Waits until the received text satisfies `check` (a deadline, not a sleep). */
  async until(check: (received: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
    await waitFor(() => check(this.received), timeoutMs, what);
    return this.received;
  }

  /** Waits for the edge to close the connection. */
  async closedByPeer(what = 'the edge to close the connection', timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.ended, timeoutMs, what);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A GET for `host` as raw bytes; keep-alive unless `close`. */
export function rawGet(host: string, path = '/', close = false): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
}

/**
 * A GET with Node's client to the edge at 127.0.0.1:`port` for `host` (Node does not resolve
 * *.localhost, so the Host header carries the name).
 */
export async function httpGet(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, resolve).on('error', reject).end());
  let body = '';
  for await (const chunk of res.setEncoding('utf8')) body += chunk as string;
  return { status: res.statusCode ?? 0, body };
}
