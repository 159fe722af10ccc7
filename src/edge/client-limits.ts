import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Most connections the public listener holds at once (`server.maxConnections`): Node closes any beyond
 * at accept, before a byte is read. Well under a typical 64 Ki file-descriptor limit, leaving room for
 * agent connections and origin-side sockets.
 */
export const MAX_PUBLIC_CONNECTIONS = 16_384;

/**
 * Counts what each client address holds (open connections, exchanges in flight) against one cap. The
 * map keeps only addresses in use, so its size is bounded by what is open.
 */
export class PerAddressLimit {
  private readonly counts = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Takes one slot for `address`; false (and nothing taken) when it already holds `max`. */
  take(address: string): boolean {
    const n = this.counts.get(address) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(address, n + 1);
    return true;
  }

  /** Gives back one slot taken for `address`. */
  release(address: string): void {
    const n = (this.counts.get(address) ?? 1) - 1;
    if (n <= 0) this.counts.delete(address);
    else this.counts.set(address, n);
  }
}

export interface ConnectionCapInit {
  /** Connections from these addresses are not counted (a trusted proxy carries many clients). */
  exempt: (address: string) => boolean;
  /** A connection beyond the cap was closed at accept. */
  onRefused: (address: string) => void;
}

/**
 * Caps the open connections of each client address on `server` (agents' WebSocket connections to the
 * public listener included) and sets `server.maxConnections`. A connection beyond the cap is destroyed
 * at accept, as Node does beyond maxConnections: it never holds a parser, a timer or an exchange.
 */
export function capConnections(server: Server, limit: PerAddressLimit, init: ConnectionCapInit): void {
  server.maxConnections = MAX_PUBLIC_CONNECTIONS;
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (init.exempt(address)) return;
    if (!limit.take(address)) {
      init.onRefused(address);
      socket.destroy();
      return;
    }
    socket.once('close', () => limit.release(address));
  });
}
