import type { HTTPChunk } from '../codec/http-chunk.js';
import { TransportClosedError } from '../errors.js';
import { ExchangeBase } from './exchange-base.js';
import type { BeginOptions } from './exchange-duplex.js';
import type { GrpcExchangeChannel } from './grpc-exchange-channel.js';

/**
 * One exchange of a GrpcExchangeChannel: every chunk it sends carries its number on the stream
 * (`seq`), and it reads only chunks of that number (the channel drops late ones).
 */
export class ChannelExchange extends ExchangeBase {
  constructor(
    private readonly channel: GrpcExchangeChannel,
    id: string,
    readonly seq: number,
    options: BeginOptions = {},
  ) {
    super(id, options.headSent === true, options.headEnded === true);
    this.headEndSent = options.headSent === true && options.headEndSent === true;
  }

  protected get transportBuffered(): boolean {
    return this.channel.bufferedChunks > 0;
  }

  protected override get peerReadsFolded(): boolean {
    return this.channel.peerReadsFolded;
  }

  protected next(): Promise<HTTPChunk | null> {
    return this.channel.readFor(this.seq);
  }

  protected send(chunk: HTTPChunk): Promise<void> {
    return this.channel.write({ ...chunk, seq: this.seq });
  }

  /** A small complete response in the turn it is taken (ExchangeBase.sendWhole): HTTP/2 windows it as any other message. */
  protected override trySendNow(chunk: HTTPChunk): boolean {
    return this.channel.tryWrite({ ...chunk, seq: this.seq });
  }

  protected sendNow(chunk: HTTPChunk): void {
    this.channel.writeNow({ ...chunk, seq: this.seq });
  }

  protected failed(err: Error, local: boolean): void {
    this.channel.exchangeFailed(this, err, local && this.writeDone);
  }

  protected finished(): void {
    this.channel.exchangeDone(this);
  }

  protected override readEnded(): void {
    if (!this.writeDone) this.channel.watchAfterEnd(this);
  }

  /** The peer sent RESET after its END (it failed late): stop writing; nothing goes back. */
  resetAfterEnd(chunk: HTTPChunk): void {
    this.resetBy(chunk);
  }

  protected endedError(): Error {
    return new TransportClosedError('stream ended inside an exchange');
  }
}
