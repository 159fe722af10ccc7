import type { Readable } from 'node:stream';
import { FRAME_HEADROOM_BYTES, FRAME_TAILROOM_BYTES, gatherData } from '../codec/data-chunk.js';
import { dataChunk, type HTTPChunk } from '../codec/http-chunk.js';
import { MAX_CHUNK_DATA_BYTES } from '../codec/tunnel-codec.js';
import { TransportClosedError } from '../errors.js';
import { StreamStop } from './readable-reader.js';

/**
 * Most bytes a GatheringReader holds read but not yet taken; at this much it stops reading its stream,
 * whose own buffer then fills and stops its source. That buffer (its highWaterMark) and one more read
 * come on top.
 */
export const GATHER_HIGH_WATER_BYTES = MAX_CHUNK_DATA_BYTES;

/**
 * Most free gather buffers kept for reuse (each MAX_CHUNK_DATA_BYTES plus frame room, ≈ 256 KiB):
 * about what one bulk transfer has in flight (a 1 MiB credit window and 1 MiB of socket buffer).
 */
export const GATHER_POOL_BUFFERS = 8;

/**
 * Full-size gather buffers, lent to GatheringReader and given back by the writer that sent them
 * (ws-direct.ts, once the socket has taken the bytes). A fresh 256 KiB buffer per chunk made the
 * sender's V8 heap run a mark-compact every few chunks (external memory pressure: 130-190 per GiB
 * on the agent of a download, two thirds of its CPU); reused, there are none. A buffer nobody gives
 * back (another transport, an exchange that failed) is simply collected.
 */
class GatherPool {
  private readonly free: Buffer[] = [];
  /** Buffers lent out and not given back yet: only those are taken back, once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  private readonly fullSize = FRAME_HEADROOM_BYTES + MAX_CHUNK_DATA_BYTES + FRAME_TAILROOM_BYTES;

  readonly take = (size: number): Buffer => {
    if (size !== this.fullSize) return Buffer.allocUnsafeSlow(size);
    const buf = this.free.pop() ?? Buffer.allocUnsafeSlow(size);
    this.lent.add(buf.buffer);
    return buf;
  };

  /** Takes back the buffer under `payload` if it is a whole full-size gather this pool lent. */
  giveBack(payload: Uint8Array): void {
    if (payload.byteLength !== MAX_CHUNK_DATA_BYTES || payload.byteOffset !== FRAME_HEADROOM_BYTES || !this.lent.has(payload.buffer)) return;
    this.lent.delete(payload.buffer);
    if (this.free.length < GATHER_POOL_BUFFERS) this.free.push(Buffer.from(payload.buffer, 0, this.fullSize));
  }

  /** Free buffers held (for tests). */
  get freeBuffers(): number {
    return this.free.length;
  }
}

/**
 * The process's gather buffers. A writer calls `giveBack(chunk.data)` once the bytes of a DATA chunk
 * it sent are written and nothing refers to them any more; anything else is ignored.
 */
export const gatherPool = new GatherPool();

/**
 * Takes the first MAX_CHUNK_DATA_BYTES (or all `bytes`, if fewer) of `parts`, which hold `bytes` in all,
 * out of `parts` as one DATA chunk: a part that straddles the limit is split, its tail left in `parts`.
 * One part leaves as it is (the encoder copies it once, as the gather would); several are gathered
 * into one pooled buffer that data-chunk.ts frames in place.
 */
export function takeDataChunk(parts: Buffer[], bytes: number): HTTPChunk {
  const take = Math.min(bytes, MAX_CHUNK_DATA_BYTES);
  let n = 0;
  let count = 0;
  while (n < take) {
    const part = parts[count];
    if (n + part.byteLength > take) {
      parts[count] = part.subarray(take - n);
      parts.splice(count, 0, part.subarray(0, take - n));
    }
    n += parts[count].byteLength;
    count++;
  }
  const taken = parts.splice(0, count);
  return taken.length === 1 ? dataChunk(taken[0]) : gatherData(taken, take, gatherPool.take);
}

/**
 * Reads a byte stream (a body, a socket) ahead while its consumer is busy sending, and hands over
 * everything read so far as one DATA chunk of up to MAX_CHUNK_DATA_BYTES: a transfer crosses in
 * chunks of 256 KiB instead of one per 64 KiB socket read, so each hop pays its per-message costs
 * a quarter as often. Nothing waits for more bytes: a lone small write (an SSE event) leaves as soon
 * as it was read. Several reads are gathered into one buffer that data-chunk.ts frames in place, so the
 * gather is the payload's one copy; a single read is handed over as it is and copied once by the encoder.
 *
 * The stream is read in paused mode ('readable' and `read()`, each 'readable' taking what arrived,
 * usually one buffer), never by pausing and resuming a flowing stream: on a public HTTP request (whose
 * socket Node's parser reads natively) that pause/resume flip-flop, under load, left the socket paused
 * in name but still read (its bytesRead grew, `readableFlowing` false), the body piling up in the
 * request without bound: a slow tunnel took a whole 512 MiB upload (test/edge/peering.test.ts, the
 * forwarded upload). Stopping at the high-water mark and leaving the rest in the stream is Node's own
 * backpressure (the request's buffer fills, its parser stops the socket).
 *
 * Bound: GATHER_HIGH_WATER_BYTES plus one read, plus the stream's highWaterMark.
 * `release()` removes the listeners and pauses the stream, leaving it to its owner.
 */
export class GatheringReader {
  private parts: Buffer[] = [];
  private bytes = 0;
  private waiter: (() => void) | undefined;

  private readonly wake = (): void => {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  };
  private readonly onReadable = (): void => {
    this.pull();
    this.wake();
  };
  private readonly stop: StreamStop;

  constructor(private readonly stream: Readable) {
    this.stop = new StreamStop(stream, this.wake);
    if (stream.readableEnded) this.stop.ended = true;
    else if (stream.destroyed) this.stop.interrupt(stream.errored ?? new TransportClosedError('stream closed before its end'));
    stream.on('readable', this.onReadable);
  }

  /**
   * Takes what the stream holds until GATHER_HIGH_WATER_BYTES; what is left waits in the stream. Once
   * `read()` gave null the stream emits 'readable' again when more arrives.
   */
  private pull(): void {
    while (this.bytes < GATHER_HIGH_WATER_BYTES) {
      const buf = this.stream.read() as Buffer | null;
      if (buf === null) return;
      this.parts.push(buf);
      this.bytes += buf.byteLength;
    }
  }

  /** Bytes read and not yet taken (at most GATHER_HIGH_WATER_BYTES plus one read). */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** What was read so far (at most MAX_CHUNK_DATA_BYTES) as one DATA chunk; null at a clean end. */
  async next(): Promise<HTTPChunk | null> {
    if (this.bytes === 0) this.pull();
    while (this.bytes === 0) {
      if (this.stop.error) throw this.stop.error;
      if (this.stop.ended) return null;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    const chunk = takeDataChunk(this.parts, this.bytes);
    this.bytes -= chunk.data!.byteLength;
    // Read ahead (what the stream holds already) while this chunk is being sent.
    if (!this.stop.error) this.pull();
    return chunk;
  }

  /** Removes the listeners and pauses the stream; bytes read and not taken are dropped. */
  release(): void {
    this.stream.off('readable', this.onReadable);
    this.stop.release();
    this.stream.pause();
    this.parts = [];
    this.bytes = 0;
  }
}
