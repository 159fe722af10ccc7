import { ChunkKind, END_CHUNK, isFolded, ResetCode, resetChunk, unfold, type HTTPChunk } from '../codec/http-chunk.js';
import { AbortError, ExchangeResetError, ProtocolError, toError } from '../errors.js';
import { noteDataBytes } from '../gc-budget.js';
import type { ExchangeDuplex } from './exchange-duplex.js';

/** Most characters of a peer's RESET reason kept for the log. */
const MAX_PEER_REASON_CHARS = 200;

/**
 * The lifecycle every transport's exchange shares: the sink loop (skipping HEADERS already sent, END at
 * the end, RESET on failure), settle-once, and `closed`. A transport supplies how one chunk is read and
 * sent and what failing or finishing means for its stream.
 */
export abstract class ExchangeBase implements ExchangeDuplex {
  readonly source: AsyncIterable<HTTPChunk>;
  readonly closed: Promise<void>;
  error: Error | undefined;
  protected writeDone = false;
  private readDone = false;
  private settled = false;
  private resolveClosed!: () => void;

  /**
   * @param headSent the request HEADERS went out another way (Open, a WebSocket stream's opening frame): sink() skips them.
   * @param headEnded the peer's opening request HEADERS carried END: the source ends after what it gives.
   */
  constructor(
    readonly id: string,
    private readonly headSent: boolean,
    headEnded = false,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    if (headEnded) this.unfolded.push(END_CHUNK);
    this.source = this.read();
  }

  /** The opening request HEADERS this side sent another way carried END folded in (sink() sends no END). */
  protected headEndSent = false;

  /** sink() was called: its loop owns the write side. */
  private sinking = false;

  /** Parts of a folded chunk from the peer not yet read (they need no wait). */
  private unfolded: HTTPChunk[] = [];

  /** True when the peer's next chunk is already here: part of a folded one, or one the transport holds. */
  get buffered(): boolean {
    return this.unfolded.length > 0 || this.transportBuffered;
  }

  /** The transport holds a chunk of the peer's not yet read. */
  protected abstract get transportBuffered(): boolean;
  /**
   * The peer reads folded chunks (proto/tunnel.proto `end`): sink() sends a producer's folded chunk as
   * it is. Otherwise it sends the chunks it stands for.
   */
  protected get peerReadsFolded(): boolean {
    return false;
  }
  /** The peer's next chunk; null when the transport ended (an error mid-exchange). */
  protected abstract next(): Promise<HTTPChunk | null>;
  /** Sends one chunk, waiting for flow control (window or credit). */
  protected abstract send(chunk: HTTPChunk): Promise<void>;
  /**
   * Sends `chunk` now if flow control lets it go without waiting; false (nothing sent) otherwise. A
   * transport without such a path keeps this default: sendWhole() then always leaves it to sink().
   */
  protected trySendNow(_chunk: HTTPChunk): boolean {
    return false;
  }
  /** Sends RESET now, without waiting. */
  protected abstract sendNow(chunk: HTTPChunk): void;
  /**
   * Transport teardown after a failure (close the stream, wake waiters). `local`: this side failed
   * (and sent RESET), rather than the peer resetting or the transport ending.
   */
  protected abstract failed(err: Error, local: boolean): void;
  /** Both directions ended cleanly. */
  protected abstract finished(): void;
  /** The error for a transport that ended inside the exchange. */
  protected abstract endedError(): Error;
  /** The peer's END was read (this side may still be writing). */
  protected readEnded(): void {}

  get isSettled(): boolean {
    return this.settled;
  }

  /**
   * See ExchangeDuplex.takeRest: the parts of a folded chunk still unread, when it carried the peer's
   * END. The reader's generator is then left where it is (nobody resumes it): the read side ends here
   * as it would at END.
   */
  takeRest(accept?: (rest: readonly HTTPChunk[]) => boolean): HTTPChunk[] | undefined {
    const parts = this.unfolded;
    if (this.settled || parts.length === 0 || parts[parts.length - 1].kind !== ChunkKind.END) return undefined;
    const end = parts.pop()!;
    if (accept && !accept(parts)) {
      parts.push(end);
      return undefined;
    }
    this.unfolded = [];
    this.readDone = true;
    this.maybeDone();
    if (!this.settled) this.readEnded();
    return parts;
  }

  private async *read(): AsyncGenerator<HTTPChunk> {
    try {
      for (;;) {
        // A folded chunk from the peer is read as the chunks it stands for.
        const chunk = this.unfolded.shift() ?? (await this.next());
        if (chunk === null) throw this.endedError();
        if (isFolded(chunk)) {
          this.unfolded = unfold(chunk);
          continue;
        }
        if (chunk.kind === ChunkKind.END) {
          this.readDone = true;
          this.maybeDone();
          if (!this.settled) this.readEnded();
          return;
        }
        if (chunk.kind === ChunkKind.RESET) {
          // The peer reset: no RESET goes back.
          throw this.resetBy(chunk);
        }
        if (chunk.data) noteDataBytes(chunk.data.byteLength);
        yield chunk;
      }
    } catch (err) {
      this.fail(toError(err), undefined);
      throw this.error ?? err;
    } finally {
      // The consumer stopped reading before END: nobody will take the rest, so the exchange is over.
      if (!this.readDone && !this.error) this.fail(new AbortError('exchange reader stopped'), ResetCode.CANCEL);
    }
  }

  /** Fails the exchange for a RESET from the peer and returns the error. */
  protected resetBy(chunk: HTTPChunk): Error {
    const code = chunk.code ?? ResetCode.UNSPECIFIED;
    // The peer's reason text is not quoted: exchange errors reach close reasons and public error pages.
    const peerReason = chunk.reason ? chunk.reason.slice(0, MAX_PEER_REASON_CHARS) : undefined;
    const err = new ExchangeResetError(`reset by peer (${ResetCode[code] ?? `code ${code}`})`, code, { peerReason });
    this.fail(err, undefined);
    return err;
  }

  /**
   * See ExchangeDuplex.sendWhole: a HEADERS chunk with this side's whole half folded in, to a peer that
   * reads folded chunks. When that head already went out another way with its END (headEndSent: the
   * edge's GET), nothing is left to send, as in sink().
   */
  sendWhole(chunk: HTTPChunk): boolean {
    if (this.settled || this.sinking || this.writeDone || chunk.kind !== ChunkKind.HEADERS || chunk.end !== true) return false;
    if (this.headSent ? !this.headEndSent : !this.peerReadsFolded || !this.trySendNow(chunk)) return false;
    this.writeDone = true;
    this.maybeDone();
    return true;
  }

  async sink(source: AsyncIterable<HTTPChunk>): Promise<void> {
    this.sinking = true;
    try {
      let first = this.headSent;
      /** The producer's last chunk went by (its `end`). */
      let last = false;
      /** END went out folded into that chunk. */
      let endSent = false;
      for await (const chunk of source) {
        if (this.error) throw this.error;
        if (last) throw new ProtocolError('a chunk after the one marked last');
        last = chunk.end === true;
        const skipHead = first && chunk.kind === ChunkKind.HEADERS;
        first = false;
        if (skipHead && last && this.headEndSent) {
          endSent = true;
        } else if (!isFolded(chunk)) {
          if (chunk.data) noteDataBytes(chunk.data.byteLength);
          if (!skipHead) await this.send(chunk);
        } else if (this.peerReadsFolded && !skipHead) {
          await this.send(chunk);
          endSent = last;
        } else {
          for (const part of unfold(chunk)) {
            if (part.kind === ChunkKind.END || (skipHead && part.kind === ChunkKind.HEADERS)) continue;
            await this.send(part);
          }
        }
      }
      if (this.error) throw this.error;
      if (!endSent) await this.send(END_CHUNK);
      this.writeDone = true;
      this.maybeDone();
    } catch (err) {
      const e = toError(err);
      this.fail(e, e instanceof ExchangeResetError ? e.resetCode : ResetCode.INTERNAL);
      throw this.error ?? e;
    }
  }

  abort(err: Error, code: ResetCode = ResetCode.INTERNAL): void {
    this.fail(err, code);
  }

  /** Fails the exchange once: RESET to the peer when `code` is given, then the transport's teardown. */
  fail(err: Error, code: ResetCode | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.error = err;
    if (code !== undefined && !(this.writeDone && this.readDone)) this.sendNow(resetChunk(code, err.message));
    this.failed(err, code !== undefined);
    this.resolveClosed();
  }

  private maybeDone(): void {
    if (!this.readDone || !this.writeDone || this.settled) return;
    this.settled = true;
    this.resolveClosed();
    this.finished();
  }
}
