import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { MAX_CHUNK_DATA_BYTES } from '../../src/codec/tunnel-codec.js';
import { resetSocket, socketChunks, writeSocket } from '../../src/streams/socket-pipe.js';
import { patternBytes, sha256, untilStable, within } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

interface Ctx {
  server: Server;
  /** Both ends of one loopback connection: `near` is what the code under test uses. */
  near: Socket;
  far: Socket;
}

const test = suite<Ctx>('streams/socket-pipe');

test.before.each(async (ctx) => {
  ctx.server = createServer({ allowHalfOpen: true });
  ctx.server.listen(0, '127.0.0.1');
  await once(ctx.server, 'listening');
  const accepted = once(ctx.server, 'connection');
  ctx.near = connect({ port: (ctx.server.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  [ctx.far] = (await accepted) as [Socket];
  await once(ctx.near, 'connect');
  ctx.near.on('error', () => undefined);
  ctx.far.on('error', () => undefined);
});

test.after.each(async (ctx) => {
  ctx.near.destroy();
  ctx.far.destroy();
  await new Promise<void>((resolve) => ctx.server.close(() => resolve()));
});

test('bytes pass both ways intact and each FIN ends its own direction only', async (ctx) => {
  const payload = patternBytes(3 * MAX_CHUNK_DATA_BYTES + 17, 4);
  // near → chunks: the far end writes, then half-closes.
  const read: Buffer[] = [];
  const reading = (async () => {
    for await (const chunk of socketChunks(ctx.near, Buffer.from('head-'))) {
      assert.ok(chunk.data!.byteLength <= MAX_CHUNK_DATA_BYTES);
      read.push(Buffer.from(chunk.data!));
    }
  })();
  ctx.far.end(payload);
  await within(reading, 5000, 'the read side to end');
  assert.is(sha256(read), sha256([Buffer.from('head-'), payload]));
  // chunks → near, still writable after the far end's FIN; our end() reaches the far end as its 'end'.
  const got: Buffer[] = [];
  ctx.far.on('data', (d: Buffer) => got.push(d));
  const ended = once(ctx.far, 'end');
  await writeSocket(ctx.near, [dataChunk(payload)][Symbol.iterator]() as unknown as AsyncIterator<HTTPChunk>);
  await within(ended, 5000, 'the far end to see our FIN');
  assert.is(sha256(got), sha256(payload));
});

test('writeSocket holds at most one chunk beyond the write high-water mark when nobody reads', async (ctx) => {
  ctx.far.pause();
  let pulled = 0;
  const block = new Uint8Array(MAX_CHUNK_DATA_BYTES);
  async function* endless(): AsyncGenerator<HTTPChunk> {
    for (;;) {
      pulled++;
      yield dataChunk(block);
    }
  }
  const writing = writeSocket(ctx.near, endless()).catch(() => undefined);
  await untilStable(() => pulled, 10_000, 'the writer to stop pulling');
  assert.ok(ctx.near.writableLength <= ctx.near.writableHighWaterMark + MAX_CHUNK_DATA_BYTES, `${ctx.near.writableLength} bytes queued`);
  ctx.near.destroy();
  await writing;
});

test('socketChunks reads only as its consumer asks: an unread socket holds about its high-water mark, then TCP pushes back', async (ctx) => {
  const it = socketChunks(ctx.near, undefined)[Symbol.asyncIterator]();
  const block = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  const pump = (): void => {
    do written += block.length;
    while (ctx.far.write(block));
    ctx.far.once('drain', pump);
  };
  pump();
  const first = await it.next();
  assert.is(first.value!.kind, ChunkKind.DATA);
  // Nothing pulls now: once the kernel buffers are full the writer gets no more 'drain'.
  await untilStable(() => written, 10_000, 'the writer to be pushed back');
  // Node stops reading the handle at the mark; one read of up to 64 KiB may land beyond it.
  assert.ok(ctx.near.readableLength <= ctx.near.readableHighWaterMark + 64 * 1024, `${ctx.near.readableLength} bytes held`);
  assert.ok(written < 64 * 1024 * 1024, `the writer got ${written} bytes out`);
  await it.return?.(undefined);
});

test('resetSocket resets the connection: the peer sees ECONNRESET, not a clean end', async (ctx) => {
  const seen = within(once(ctx.far, 'error'), 5000, 'the reset') as Promise<[NodeJS.ErrnoException]>;
  ctx.far.resume();
  resetSocket(ctx.near);
  assert.is((await seen)[0].code, 'ECONNRESET');
});

test.run();
