import { ChunkOrder } from '../codec/chunk-order.js';
import { ChunkKind, dataChunk, END_CHUNK, isFolded, unfold, type HTTPChunk } from '../codec/http-chunk.js';
import type { WsFrame } from '../codec/ws-frame.js';
import { FrameTooLargeError, ProtocolError, TransportClosedError } from '../errors.js';
import { ExchangeBase } from './exchange-base.js';
import { MAX_QUEUED_CHUNKS, bareChunk, chunkCost, chunkOverheadBytes } from './ws-credit.js';

/** What a stream needs from the WsMux that carries it. */
export interface MuxStreamHost {
  /** Our window per exchange (what the peer may send before credit returns). */
  readonly localWindow: number;
  /** The peer's window per exchange. */
  readonly remoteWindow: number;
  /** Writes a frame, waiting while the socket's buffer is full. */
  write(frame: WsFrame): Promise<void>;
  /** Writes a frame now unless the socket's buffer is full; false (nothing written) if it is. */
  writeNow(frame: WsFrame): boolean;
  /** Writes a small frame now (credit, RESET). */
  sendNow(frame: WsFrame): void;
  /** The stream is over: forget its id. */
  release(stream: MuxStream): void;
  /** The peer reads folded chunks (Registered.folded_chunks). */
  readonly peerReadsFolded: boolean;
}

interface Queued {
  chunk: HTTPChunk;
  cost: number;
}

/**
 * One exchange on a WsMux. Each direction has a credit window counted in chunk cost (ws-credit.ts):
 * the peer may have at most `localWindow` of cost queued here, and we send at most `remoteWindow`
 * ahead of what the peer consumed. Received chunks must keep the exchange's order (ChunkOrder).
 */
export class MuxStream extends ExchangeBase {
  private queue: Queued[] = [];
  /** The peer's direction was complete (END queued) when its RESET came. */
  private peerEnded = false;
  private readWaiter: (() => void) | undefined;
  private creditWaiter: (() => void) | undefined;
  private readonly order: ChunkOrder;
  private readonly recvOverhead: number;
  private readonly sendOverhead: number;
  private recvAllowed: number;
  private consumed = 0;
  private sendCredit: number;

  /**
   * @param opener `local`: we opened it (the edge: we send the request, the peer answers);
   *   `peer`: the peer opened it with request HEADERS, which are not queued.
   * @param upgrade the request asked for an upgrade: a 101 answer is final (ChunkOrder).
   * @param headEnd `local`: the opening HEADERS we sent carried END; `peer`: the peer's did.
   */
  constructor(
    private readonly mux: MuxStreamHost,
    readonly streamId: number,
    id: string,
    opener: 'local' | 'peer',
    upgrade = false,
    headEnd = false,
  ) {
    super(id, opener === 'local', opener === 'peer' && headEnd);
    this.headEndSent = opener === 'local' && headEnd;
    this.order = opener === 'local' ? new ChunkOrder('response', false, upgrade) : new ChunkOrder('request', true);
    if (opener === 'peer' && headEnd) this.order.accept(END_CHUNK);
    this.recvAllowed = mux.localWindow;
    this.recvOverhead = chunkOverheadBytes(mux.localWindow);
    this.sendCredit = mux.remoteWindow;
    this.sendOverhead = chunkOverheadBytes(mux.remoteWindow);
  }

  protected get transportBuffered(): boolean {
    return this.queue.length > 0;
  }

  protected override get peerReadsFolded(): boolean {
    return this.mux.peerReadsFolded;
  }

  /**
   * A chunk from the peer. Throws ProtocolError (the session is broken) for a chunk out of order or
   * beyond the credit we granted.
   */
  deliver(chunk: HTTPChunk): void {
    if (this.isSettled) return;
    // A folded chunk keeps the order of the chunks it stands for; it is queued (and charged) as one.
    if (isFolded(chunk)) for (const part of unfold(chunk)) this.order.accept(part);
    else this.order.accept(chunk);
    if (chunk.kind === ChunkKind.RESET) {
      // A reset aborts both directions now, even when nobody is reading (a sender waiting for credit);
      // after the peer's END (it failed late) what it sent before is complete and still delivered.
      this.peerEnded = this.queue.at(-1)?.chunk.kind === ChunkKind.END;
      this.resetBy(chunk);
      return;
    }
    const cost = chunkCost(chunk, this.recvOverhead);
    if (cost > this.recvAllowed) throw new ProtocolError(`stream ${this.streamId} sent a chunk of ${cost} bytes with ${this.recvAllowed} bytes of credit`);
    if (this.queue.length >= MAX_QUEUED_CHUNKS) throw new ProtocolError(`stream ${this.streamId} has ${MAX_QUEUED_CHUNKS} chunks queued`);
    this.recvAllowed -= cost;
    this.queue.push({ chunk: bareChunk(chunk), cost });
    this.wakeReader();
  }

  /** The peer consumed `n` bytes (chunk cost) of ours. */
  credit(n: number): void {
    if (this.isSettled) return;
    this.sendCredit += n;
    if (this.sendCredit > this.mux.remoteWindow) throw new ProtocolError(`stream ${this.streamId} granted credit beyond its window`);
    this.wakeSender();
  }

  protected async next(): Promise<HTTPChunk | null> {
    while (this.queue.length === 0) {
      if (this.error) throw this.error;
      await new Promise<void>((resolve) => (this.readWaiter = resolve));
    }
    const { chunk, cost } = this.queue.shift()!;
    // Nothing follows END in this direction (or a chunk with END folded in): its credit is not worth a frame.
    if (chunk.kind !== ChunkKind.END && !chunk.end) this.consume(cost);
    return chunk;
  }

  /** Credit goes back only for what the application took, batched at half the window. */
  private consume(n: number): void {
    this.consumed += n;
    if (this.consumed >= this.mux.localWindow / 2) {
      this.recvAllowed += this.consumed;
      this.mux.sendNow({ stream: this.streamId, credit: this.consumed });
      this.consumed = 0;
    }
  }

  /** Sends `chunk` within our credit; DATA is split when the credit left is short. */
  protected async send(chunk: HTTPChunk): Promise<void> {
    if (chunk.kind !== ChunkKind.DATA) {
      const cost = chunkCost(chunk, this.sendOverhead);
      if (cost > this.mux.remoteWindow && isFolded(chunk)) {
        // Too large to go as one (a big first DATA): its parts go one by one, DATA split as usual.
        for (const part of unfold(chunk)) await this.send(part);
        return;
      }
      if (cost > this.mux.remoteWindow) throw new FrameTooLargeError(`a chunk of ${cost} bytes exceeds the peer's window`);
      await this.waitCredit(cost);
      this.sendCredit -= cost;
      await this.mux.write({ stream: this.streamId, chunk });
      return;
    }
    let data = chunk.data!;
    // Parts smaller than a quarter window are sent only as the tail, so splitting never dribbles.
    const smallest = Math.floor(this.mux.remoteWindow / 4);
    for (;;) {
      await this.waitCredit(this.sendOverhead + Math.min(data.byteLength, smallest));
      const room = this.sendCredit - this.sendOverhead;
      const part = data.byteLength <= room ? data : data.subarray(0, room);
      this.sendCredit -= this.sendOverhead + part.byteLength;
      // Only the last part of a split DATA keeps a folded END.
      const last = part === data;
      await this.mux.write({ stream: this.streamId, chunk: part === chunk.data ? chunk : last && chunk.end ? { ...dataChunk(part), end: true } : dataChunk(part) });
      if (last) return;
      data = data.subarray(room);
    }
  }

  protected override trySendNow(chunk: HTTPChunk): boolean {
    if (chunk.kind === ChunkKind.DATA) return false;
    const cost = chunkCost(chunk, this.sendOverhead);
    if (cost > this.sendCredit || !this.mux.writeNow({ stream: this.streamId, chunk })) return false;
    this.sendCredit -= cost;
    return true;
  }

  private async waitCredit(n: number): Promise<void> {
    while (this.sendCredit < n) {
      if (this.error) throw this.error;
      await new Promise<void>((resolve) => (this.creditWaiter = resolve));
    }
    if (this.error) throw this.error;
  }

  protected sendNow(chunk: HTTPChunk): void {
    this.mux.sendNow({ stream: this.streamId, chunk });
  }

  protected failed(): void {
    if (!this.peerEnded) this.queue = [];
    this.wakeReader();
    this.wakeSender();
    this.mux.release(this);
  }

  protected finished(): void {
    this.mux.release(this);
  }

  private wakeReader(): void {
    const w = this.readWaiter;
    this.readWaiter = undefined;
    w?.();
  }

  private wakeSender(): void {
    const w = this.creditWaiter;
    this.creditWaiter = undefined;
    w?.();
  }

  protected endedError(): Error {
    return new TransportClosedError('WebSocket ended inside an exchange');
  }
}
