import { ProtocolError } from '../errors.js';
import { ChunkKind, type HTTPChunk } from './http-chunk.js';

/** Where one direction of an exchange is: before its final HEADERS, in its body, after TRAILERS, ended. */
export type ChunkOrderStatus = 'head' | 'body' | 'trailers' | 'ended';

/**
 * The order of the chunks one side sends in one direction of an exchange (DESIGN.md §3):
 * informational (1xx) HEADERS* (responses only), the final HEADERS, DATA*, at most one TRAILERS, END.
 * RESET may come at any time. `accept` throws ProtocolError for anything else, so a peer cannot queue
 * chunks the reader would never take (a second HEADERS, DATA after END).
 *
 * Upgrades (DESIGN.md §6.2): a `101` answers only a request that asked for an upgrade, and then it is
 * the final HEADERS, after which both directions carry raw DATA* END. A `101` to any other request is
 * a ProtocolError (Node and browsers would take the connection as switched).
 */
export class ChunkOrder {
  private current: ChunkOrderStatus;

  /**
   * @param direction `request`: what the edge sends; `response`: what the agent answers.
   * @param headDone the final HEADERS already went by (the request HEADERS that opened the exchange).
   * @param upgrade the request asked for an upgrade (upgradeProtocol): a 101 response is final.
   */
  constructor(
    private readonly direction: 'request' | 'response',
    headDone = false,
    private readonly upgrade = false,
  ) {
    this.current = headDone ? 'body' : 'head';
  }

  get status(): ChunkOrderStatus {
    return this.current;
  }

  /** Moves past `chunk`, or throws ProtocolError (naming kinds only, never peer text). */
  accept(chunk: HTTPChunk): void {
    if (chunk.kind === ChunkKind.RESET) {
      this.current = 'ended';
      return;
    }
    const kind = ChunkKind[chunk.kind] ?? 'unknown chunk';
    switch (this.current) {
      case 'head':
        if (chunk.kind !== ChunkKind.HEADERS) throw new ProtocolError(`${kind} before HEADERS`);
        if (this.direction === 'request' ? !chunk.method : chunk.method || !chunk.status) {
          throw new ProtocolError(`HEADERS of the wrong direction in a ${this.direction}`);
        }
        if (this.direction === 'response' && chunk.status === 101) {
          if (!this.upgrade) throw new ProtocolError('101 to a request that asked for no upgrade');
          this.current = 'body';
          return;
        }
        // Informational responses (100 Continue, 103 Early Hints) precede the final one.
        if (this.direction === 'response' && chunk.status! < 200) return;
        this.current = 'body';
        return;
      case 'body':
        if (chunk.kind === ChunkKind.DATA) return;
        if (chunk.kind === ChunkKind.TRAILERS) this.current = 'trailers';
        else if (chunk.kind === ChunkKind.END) this.current = 'ended';
        else throw new ProtocolError(`${kind} inside a body`);
        return;
      case 'trailers':
        if (chunk.kind !== ChunkKind.END) throw new ProtocolError(`${kind} after TRAILERS`);
        this.current = 'ended';
        return;
      case 'ended':
        throw new ProtocolError(`${kind} after END`);
    }
  }
}
