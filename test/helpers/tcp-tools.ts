import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** The port of a `tcp://host:port` tunnel URL. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** A TCP server on 127.0.0.1:0 whose every connection goes to `onConnection` (swappable); tracks its sockets. */
export class TcpOriginServer {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  onConnection: (socket: Socket) => void = (s) => s.pipe(s);
  port = 0;

  private constructor() {
    this.server = createServer({ allowHalfOpen: true }, (socket) => {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => this.sockets.delete(socket));
      this.onConnection(socket);
    });
  }

  static async start(): Promise<TcpOriginServer> {
    const origin = new TcpOriginServer();
    await new Promise<void>((resolve) => origin.server.listen(0, '127.0.0.1', resolve));
    origin.port = (origin.server.address() as AddressInfo).port;
    return origin;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A TCP forwarder to `target` whose connections the test can cut at once (a network loss between
 * agent and edge), while it keeps accepting new ones.
 */
export class Forwarder {
  readonly server: Server;
  target = 0;
  port = 0;
  private readonly pairs = new Set<Socket>();

  private constructor() {
    this.server = createServer((down) => {
      const up = connect(this.target, '127.0.0.1');
      for (const s of [down, up]) {
        this.pairs.add(s);
        s.on('error', () => undefined);
        s.once('close', () => {
          this.pairs.delete(s);
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up);
      up.pipe(down);
    });
  }

  static async start(): Promise<Forwarder> {
    const f = new Forwarder();
    await new Promise<void>((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    f.port = (f.server.address() as AddressInfo).port;
    return f;
  }

  /** Resets every connection through it now. */
  cut(): void {
    for (const s of this.pairs) s.resetAndDestroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Opens a connection to 127.0.0.1:`port`; resolves once connected. */
export async function dial(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(socket, 'connect');
  // A reset the test does not wait for (an edge closing under it) is no crash; tests that do add their own listener.
  socket.on('error', () => undefined);
  return socket;
}

/** Everything `socket` sends until its FIN, hashed: its SHA-256 and length. Rejects on a reset. */
export function hashUntilEnd(socket: Socket): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    socket.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.byteLength;
    });
    socket.once('end', () => resolve({ sha: h.digest('hex'), bytes }));
    socket.once('error', reject);
  });
}

/** Everything `socket` sends until its FIN. Rejects on a reset. */
export function readUntilEnd(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.once('end', () => resolve(Buffer.concat(parts)));
    socket.once('error', reject);
  });
}

/** How a socket ended: `end` (FIN), `reset` (an error such as ECONNRESET), or `close` without either. Reads (and drops) what comes. */
export function endingOf(socket: Socket): Promise<'end' | 'reset' | 'close'> {
  // Only a reading socket sees a FIN or an RST.
  socket.resume();
  return new Promise((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', () => resolve('reset'));
    socket.once('close', (hadError) => resolve(hadError ? 'reset' : 'close'));
  });
}

/** Writes `data` in slices with backpressure, then ends (FIN). */
export async function writeAll(socket: Socket, data: Buffer, slice = 256 * 1024): Promise<void> {
  for (let off = 0; off < data.byteLength; off += slice) {
    if (!socket.write(data.subarray(off, off + slice))) await once(socket, 'drain');
  }
  socket.end();
}

/** Whether `cmd` is on PATH (a test that needs a Debian tool skips with a line when it is not). */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
