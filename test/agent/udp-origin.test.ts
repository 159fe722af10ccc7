import * as assert from 'uvu/assert';
import { UdpOrigin } from '../../src/agent/udp-origin.js';
import { DATAGRAM_BATCH_HEADER, decodeBatch, encodeBatch, offersBatching } from '../../src/codec/datagram-batch.js';
import { ChunkKind, ExchangeKind, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { silentLogger } from '../../src/logger.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';
import { UdpOriginServer } from '../helpers/udp-tools.js';

/**
 * The agent's end of datagram batching, driven by a hand-written exchange (the edge's side) against a
 * real UDP echo origin: it accepts an offer, refuses a malformed batch, and keeps one datagram per DATA
 * for an edge that does not offer.
 */
const test = suite<{ origin: UdpOriginServer; got: string[] }>('agent/udp-origin');

test.before.each(async (ctx) => {
  ctx.origin = await UdpOriginServer.start();
  ctx.got = [];
  const echo = ctx.origin.onMessage;
  ctx.origin.onMessage = (msg, rinfo, socket) => {
    ctx.got.push(msg.toString());
    echo(msg, rinfo, socket);
  };
});

test.after.each(async (ctx) => {
  await ctx.origin.close();
});

/** The edge's side of one exchange: chunks pushed by the test, chunks the agent sends recorded. */
class HandExchange implements ExchangeDuplex {
  readonly id = 'x';
  readonly sent: HTTPChunk[] = [];
  error: Error | undefined;
  resetCode: ResetCode | undefined;
  readonly buffered = false;
  readonly closed: Promise<void>;
  private done!: () => void;
  private readonly inbox: HTTPChunk[] = [];
  private wake: (() => void) | undefined;

  constructor() {
    this.closed = new Promise((r) => (this.done = r));
  }

  push(chunk: HTTPChunk): void {
    this.inbox.push(chunk);
    this.wake?.();
  }

  get source(): AsyncIterable<HTTPChunk> {
    const self = this;
    return (async function* () {
      for (;;) {
        if (self.error) throw self.error;
        const next = self.inbox.shift();
        if (next) yield next;
        else await new Promise<void>((r) => (self.wake = r));
      }
    })();
  }

  async sink(source: AsyncIterable<HTTPChunk>): Promise<void> {
    for await (const chunk of source) {
      if (this.error) return;
      this.sent.push(chunk);
    }
  }

  abort(err: Error, code?: ResetCode): void {
    if (this.error) return;
    this.error = err;
    this.resetCode = code;
    this.wake?.();
    this.done();
  }

  /** Datagrams of the DATA the agent sent, decoded as batches or one per DATA. */
  replies(batched: boolean): string[] {
    const data = this.sent.filter((c) => c.kind === ChunkKind.DATA).map((c) => Buffer.from(c.data!));
    return (batched ? data.flatMap((d) => decodeBatch(d)) : data).map(String);
  }
}

const open = (batching: boolean): HTTPChunk => ({
  kind: ChunkKind.HEADERS,
  exchangeId: 'x',
  method: 'CONNECT',
  target: '*',
  exchangeKind: ExchangeKind.DATAGRAM,
  headers: batching ? [DATAGRAM_BATCH_HEADER] : [],
});
const data = (bytes: Buffer): HTTPChunk => ({ kind: ChunkKind.DATA, data: bytes });

function serve(ctx: { origin: UdpOriginServer }, head: HTTPChunk, exchange: HandExchange): Promise<void> {
  return new UdpOrigin({ host: '127.0.0.1', port: ctx.origin.port, logger: silentLogger() }).serve(head, exchange);
}

test('an offer is echoed; a batch reaches the origin as separate datagrams and replies come back as batches', async (ctx) => {
  const exchange = new HandExchange();
  const served = serve(ctx, open(true), exchange);
  exchange.push(data(encodeBatch([Buffer.from('one'), Buffer.from(''), Buffer.from('three')])));
  await waitFor(() => exchange.replies(true).length === 3, 5000, 'three replies');
  assert.ok(offersBatching(exchange.sent[0].headers), 'the 200 echoes the offer');
  assert.equal(ctx.got, ['one', '', 'three']);
  assert.equal(exchange.replies(true), ['one', '', 'three']);
  exchange.abort(new Error('test over'), ResetCode.CANCEL);
  await served;
});

test('without an offer each DATA is one datagram, even one that looks like a batch', async (ctx) => {
  const exchange = new HandExchange();
  const served = serve(ctx, open(false), exchange);
  exchange.push(data(encodeBatch([Buffer.from('ab')])));
  await waitFor(() => exchange.replies(false).length === 1, 5000, 'one reply');
  assert.not.ok(offersBatching(exchange.sent[0].headers));
  assert.equal(ctx.got, ['\0\x02ab']);
  exchange.abort(new Error('test over'), ResetCode.CANCEL);
  await served;
});

test('a malformed batch from the edge resets the exchange with PROTOCOL_ERROR and sends nothing of it', async (ctx) => {
  const exchange = new HandExchange();
  const served = serve(ctx, open(true), exchange);
  exchange.push(data(Buffer.from([0, 1, 0x61, 0])));
  await served;
  assert.is(exchange.resetCode, ResetCode.PROTOCOL_ERROR);
  assert.equal(ctx.got, []);
});

test.run();
