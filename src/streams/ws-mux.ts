import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { ChunkKind, ResetCode, resetChunk, type HTTPChunk } from '../codec/http-chunk.js';
import { upgradeProtocol } from '../codec/http-fields.js';
import { isPlainData } from '../codec/data-chunk.js';
import type { WsCodec, WsFrame } from '../codec/ws-frame.js';
import { ProtocolError, SessionFaultError, TransportClosedError, toError } from '../errors.js';
import type { ExchangeDuplex } from './exchange-duplex.js';
import { wsCloseReason } from './ws-close-reason.js';
import { writeDirectData } from './ws-direct.js';
import { MuxStream, type MuxStreamHost } from './ws-mux-stream.js';

/** Default per-exchange receive window on WebSocket, in bytes of chunk cost (credit returned at half). */
export const DEFAULT_WS_WINDOW_BYTES = 1024 * 1024;
/** Smallest window either side may announce. */
export const MIN_WS_WINDOW_BYTES = 256 * 1024;
/** Socket-level write buffer above which DATA writers wait, and advisory frames are dropped. */
export const WS_SOCKET_HIGH_WATER_BYTES = 1024 * 1024;
/**
 * Socket-level write buffer above which the session is closed: frames that cannot wait (credit,
 * RESET, HEADERS, pong) still may not pile up behind a peer that does not read. A reading peer stays
 * far below it: DATA stops at WS_SOCKET_HIGH_WATER_BYTES and the rest is small and bounded in count.
 */
export const WS_SEND_BUFFER_LIMIT_BYTES = 8 * 1024 * 1024;

/** WebSocket close codes the mux uses (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_TOO_BIG = 1009;
const CLOSE_INTERNAL_ERROR = 1011;

export interface WsMuxInit {
  socket: WebSocket;
  codec: WsCodec;
  /** The edge opens exchanges on odd ids; the agent answers on them. */
  role: 'edge' | 'agent';
  /** Bytes of chunk cost we accept per exchange before we return credit. */
  localWindow: number;
  /** Control frames (stream 0). A promise it returns is watched like a throw. */
  onControl: (frame: WsFrame) => void | Promise<void>;
  /** Agent: the edge opened an exchange with these request HEADERS. A rejection is a fault. */
  onExchange?: (head: HTTPChunk, exchange: ExchangeDuplex) => void | Promise<void>;
  /** The socket is gone or the session broke the protocol; `err` says why. Called once. */
  onClose: (err: Error) => void;
  /**
   * DATA frames are written straight to the TCP socket, header and payload side by side, instead of
   * through `ws.send()` (ws-direct.ts): `unmasked` from a server, `zero-mask` from a client that masks
   * with a zero key. Only for the binary (protobuf) codec on a socket without permessage-deflate.
   * Default: every frame through `ws.send()`.
   */
  directData?: 'unmasked' | 'zero-mask';
  /**
   * A handler of this session threw (SessionFaultError, the thrown value as its cause). The session is
   * closed (1011) right after; the caller logs and counts it. Default: nothing.
   */
  onFault?: (err: SessionFaultError) => void;
}

/**
 * Many exchanges over one WebSocket without head-of-line blocking: each exchange has its own credit
 * window per direction, so a stalled reader stops only its own sender. The socket is always read;
 * what one exchange may buffer here is bounded by the window it granted.
 *
 * Every socket handler runs behind a guard: whatever it throws closes this session only.
 *
 * Teardown order (close): every stream fails (pending reads throw, writers wake) → onClose → socket
 * closed with a code.
 */
export class WsMux implements MuxStreamHost {
  /** The peer's window per exchange (from its Hello / Registered). */
  remoteWindow = DEFAULT_WS_WINDOW_BYTES;
  /** The peer reads folded chunks (the agent's mux once Registered says so, the edge's once Hello does). */
  peerReadsFolded = false;
  readonly localWindow: number;
  private readonly init: WsMuxInit;
  private readonly directData: WsMuxInit['directData'];
  private readonly socket: WebSocket;
  private readonly streams = new Map<number, MuxStream>();
  private readonly flushWaiters = new Set<() => void>();
  private nextStreamId = 1;
  private highestPeerStream = 0;
  private closeError: Error | undefined;

  constructor(init: WsMuxInit) {
    this.init = init;
    this.socket = init.socket;
    this.localWindow = init.localWindow;
    this.directData = init.codec.binary ? init.directData : undefined;
    this.socket.on('message', this.guard((data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary)));
    // The peer's close reason stays out of the error: exchange errors can reach public error pages.
    this.socket.on('close', this.guard((code: number) => this.shutdown(new TransportClosedError(`WebSocket closed (${code})`, { closeCode: code }))));
    this.socket.on('error', this.guard((err: Error) => this.shutdown(new TransportClosedError(`WebSocket failed: ${err.message}`, { cause: err }))));
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** True once the session is over (closed by either side, or broken). */
  get isClosed(): boolean {
    return this.closeError !== undefined;
  }

  /**
   * Edge: starts an exchange whose request HEADERS are `head` (sent now; sink() skips them). END
   * folded into `head` goes with it to a peer that reads folded chunks, else sink() sends it.
   */
  open(head: HTTPChunk): ExchangeDuplex {
    if (this.closeError) throw this.closeError;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const headEnd = head.end === true && this.peerReadsFolded;
    const stream = new MuxStream(this, id, head.exchangeId ?? String(id), 'local', upgradeProtocol(head.headers ?? []) !== undefined, headEnd);
    this.streams.set(id, stream);
    this.sendNow({ stream: id, chunk: head.end && !headEnd ? { ...head, end: undefined } : head });
    return stream;
  }

  /** Sends a control frame (stream 0). */
  sendControl(frame: WsFrame): void {
    this.sendNow(frame);
  }

  /** @internal writes a frame once the socket's buffer is below its high-water mark. */
  async write(frame: WsFrame): Promise<void> {
    while (!this.writeNow(frame)) {
      if (this.closeError) throw this.closeError;
      await new Promise<void>((resolve) => this.flushWaiters.add(resolve));
    }
  }

  /** @internal writes a frame now when the socket's buffer is below its high-water mark; false, with nothing written, otherwise. */
  writeNow(frame: WsFrame): boolean {
    if (this.closeError || this.socket.bufferedAmount >= WS_SOCKET_HIGH_WATER_BYTES) return false;
    this.corkForTurn();
    const raw = this.corked;
    if (this.directData && raw && !raw.destroyed && 'chunk' in frame && isPlainData(frame.chunk) && this.socket.readyState === this.socket.OPEN) {
      writeDirectData(raw, frame.stream, frame.chunk, this.directData === 'zero-mask', this.onFlushed);
    } else this.socket.send(this.init.codec.encode(frame), { binary: this.init.codec.binary }, this.onFlushed);
    return true;
  }

  /**
   * @internal writes without waiting (HEADERS, credit, RESET, control: small and bounded in count).
   * A peer that lets the buffer pass WS_SEND_BUFFER_LIMIT_BYTES is not reading: its session is closed.
   */
  sendNow(frame: WsFrame): void {
    if (this.closeError || this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > WS_SEND_BUFFER_LIMIT_BYTES) {
      this.close(new ProtocolError(`peer does not read: more than ${WS_SEND_BUFFER_LIMIT_BYTES} bytes wait to be sent`), CLOSE_POLICY_VIOLATION);
      return;
    }
    this.corkForTurn();
    this.socket.send(this.init.codec.encode(frame), { binary: this.init.codec.binary }, this.onFlushed);
  }

  /** @internal */
  release(stream: MuxStream): void {
    this.streams.delete(stream.streamId);
  }

  /** Closes the socket and fails every exchange. Idempotent; never throws. */
  close(err: Error, code = 1000): void {
    if (this.closeError) return;
    try {
      this.shutdown(err);
    } catch (cause) {
      // Callers include timers and actors: a throwing onClose must not escape from here.
      this.report(cause);
    }
    try {
      // The reason is our own text (no peer text is ever quoted into an error), cut to what fits.
      this.socket.close(code, wsCloseReason(err.message));
    } catch {
      this.socket.terminate();
    }
  }

  /** Breaks the session for a peer that broke the protocol; the reason is logged by onClose. */
  protocolError(message: string): void {
    this.close(new ProtocolError(message), CLOSE_PROTOCOL_ERROR);
  }

  /** The socket under `ws` while it is corked for this turn (see corkForTurn). */
  private corked: Socket | undefined;
  private readonly uncork = (): void => {
    const raw = this.corked;
    this.corked = undefined;
    raw?.uncork();
  };

  /**
   * Frames sent in one turn of the event loop leave in one write: the first send of a turn corks the
   * TCP socket under ws and the end of the turn (setImmediate) uncorks it. Each frame was a write
   * (a syscall) of its own: 10 % of the agent's CPU per small request, one frame per exchange each
   * way. What waits is what this turn wrote, already counted in bufferedAmount (the bounds above hold).
   */
  private corkForTurn(): void {
    if (this.corked) return;
    // ws keeps its socket in `_socket` (internal): without it (a change in ws), frames go one by one.
    const raw = (this.socket as unknown as { _socket?: Socket | null })._socket;
    if (!raw || raw.destroyed) return;
    this.corked = raw;
    raw.cork();
    setImmediate(this.uncork);
  }

  private readonly onFlushed = (): void => {
    for (const wake of this.flushWaiters) wake();
    this.flushWaiters.clear();
  };

  private shutdown(err: Error): void {
    if (this.closeError) return;
    this.closeError = err;
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.onFlushed();
    try {
      for (const s of streams) s.fail(err, undefined);
    } finally {
      this.init.onClose(err);
    }
  }

  /** Wraps a socket handler: a throw, or a rejection of what it returns, closes this session only. */
  private guard<A extends unknown[]>(handler: (...args: A) => unknown): (...args: A) => void {
    return (...args) => {
      try {
        const result = handler(...args);
        if (result instanceof Promise) result.catch((err: unknown) => this.fault(err));
      } catch (err) {
        this.fault(err);
      }
    };
  }

  private fault(cause: unknown): void {
    const err = this.report(cause);
    if (this.closeError) this.socket.terminate();
    else this.close(err, CLOSE_INTERNAL_ERROR);
  }

  private report(cause: unknown): SessionFaultError {
    const err = new SessionFaultError('session handler failed', { cause });
    try {
      this.init.onFault?.(err);
    } catch {
      // The report failed too; closing the session is what matters.
    }
    return err;
  }

  private onMessage(data: Buffer, isBinary: boolean): unknown {
    if (this.closeError) return;
    let frame: WsFrame;
    try {
      frame = this.init.codec.decode(data, isBinary);
    } catch (err) {
      this.close(toError(err), err instanceof ProtocolError ? CLOSE_PROTOCOL_ERROR : CLOSE_TOO_BIG);
      return;
    }
    if (frame.stream === 0) return this.init.onControl(frame);
    try {
      return this.onStreamFrame(frame);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.close(err, CLOSE_PROTOCOL_ERROR);
    }
  }

  private onStreamFrame(frame: WsFrame): unknown {
    const stream = this.streams.get(frame.stream);
    if ('credit' in frame) return stream?.credit(frame.credit);
    if (!('chunk' in frame)) return;
    if (stream) return stream.deliver(frame.chunk);
    return this.onUnknownStream(frame.stream, frame.chunk);
  }

  private onUnknownStream(id: number, chunk: HTTPChunk): unknown {
    const peerOpens = this.init.role === 'agent';
    if (peerOpens && id > this.highestPeerStream && id % 2 === 1 && chunk.kind === ChunkKind.HEADERS && chunk.method) {
      this.highestPeerStream = id;
      const stream = new MuxStream(this, id, chunk.exchangeId ?? String(id), 'peer', false, chunk.end === true);
      this.streams.set(id, stream);
      return this.init.onExchange?.(chunk, stream);
    }
    const known = peerOpens ? id <= this.highestPeerStream : id < this.nextStreamId;
    // Frames for an exchange that just ended (ours reset it, or END crossed a RESET) are dropped;
    // anything else names a stream that never existed: reset just that id. The RESET is advisory, so
    // it is dropped rather than queued behind a peer that sends without reading.
    if (known || chunk.kind === ChunkKind.RESET || this.socket.bufferedAmount >= WS_SOCKET_HIGH_WATER_BYTES) return;
    this.sendNow({ stream: id, chunk: resetChunk(ResetCode.PROTOCOL_ERROR, 'unknown stream') });
  }
}
