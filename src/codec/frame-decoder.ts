import { FrameTooLargeError, ProtocolError } from '../errors.js';
import { MAX_FRAME_BYTES } from './tunnel-codec.js';

/**
 * Length-prefixed framing for byte streams that do not keep message boundaries: each frame is a
 * 4-byte big-endian length followed by that many bytes. Sans-IO: `write(bytes)` returns every frame
 * completed so far; an incomplete frame is not an error, it waits for more bytes.
 */
export const FRAME_HEADER_BYTES = 4;

export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export interface FrameDecoderInit {
  /** Largest payload accepted, in bytes; default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
}

export class FrameDecoder {
  private readonly maxFrameBytes: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private failed: Error | undefined;

  constructor(init: FrameDecoderInit = {}) {
    this.maxFrameBytes = init.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  /** Bytes held waiting for the rest of a frame (at most one frame plus its header). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds bytes; returns the frames they complete. Once a header announces an oversize frame, the
   * frames completed before it are still returned and every later call throws FrameTooLargeError.
   */
  write(bytes: Uint8Array): Uint8Array[] {
    if (this.failed) throw this.failed;
    if (bytes.byteLength === 0) return [];
    this.pending.push(bytes);
    this.pendingBytes += bytes.byteLength;
    const frames: Uint8Array[] = [];
    while (this.pendingBytes >= FRAME_HEADER_BYTES) {
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
      if (length > this.maxFrameBytes) {
        this.failed = new FrameTooLargeError(`frame of ${length} bytes exceeds ${this.maxFrameBytes}`);
        this.pending = [];
        this.pendingBytes = 0;
        break;
      }
      if (this.pendingBytes < FRAME_HEADER_BYTES + length) break;
      this.take(FRAME_HEADER_BYTES);
      frames.push(this.take(length));
    }
    // Frames completed before the oversize one are delivered; the error comes with the next call.
    if (this.failed && frames.length === 0) throw this.failed;
    return frames;
  }

  /** Call at end of input: leftover bytes mean the stream was cut mid-frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.pendingBytes > 0) throw new ProtocolError(`stream ended inside a frame (${this.pendingBytes} bytes left)`);
  }

  private peek(n: number): Uint8Array {
    const first = this.pending[0];
    if (first.byteLength >= n) return first.subarray(0, n);
    return this.concat(n, false);
  }

  private take(n: number): Uint8Array {
    const first = this.pending[0];
    if (first !== undefined && first.byteLength >= n) {
      const out = first.subarray(0, n);
      if (first.byteLength === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
      this.pendingBytes -= n;
      return out;
    }
    return this.concat(n, true);
  }

  private concat(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const part = this.pending[i];
      const use = Math.min(part.byteLength, n - filled);
      out.set(part.subarray(0, use), filled);
      filled += use;
      if (consume) {
        if (use === part.byteLength) {
          this.pending.shift();
        } else {
          this.pending[0] = part.subarray(use);
        }
      } else {
        i++;
      }
    }
    if (consume) this.pendingBytes -= n;
    return out;
  }
}
