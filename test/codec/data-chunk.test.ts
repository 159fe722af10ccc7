import fc from 'fast-check';
import type protobuf from 'protobufjs';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { encodeDataChunk, encodeWsDataFrame, gatherData, isPlainData, readDataChunk, readWsDataFrame } from '../../src/codec/data-chunk.js';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { decodeChunk, encodeChunk, MAX_CHUNK_DATA_BYTES, tunnelRoot } from '../../src/codec/tunnel-codec.js';
import { WS_CODECS } from '../../src/codec/ws-frame.js';

const test = suite('codec/data-chunk');
const SEED = 20261127;
const HTTPChunkType = tunnelRoot.lookupType('jetty.tunnel.v1.HTTPChunk');
const WsFrameType = tunnelRoot.lookupType('jetty.tunnel.v1.WsFrame');
const viaProtobufjs = (chunk: HTTPChunk): Buffer => Buffer.from(HTTPChunkType.encode(chunk as unknown as protobuf.Message).finish());

const dataArb = fc.record(
  {
    data: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: MAX_CHUNK_DATA_BYTES }).map((n) => new Uint8Array(n).fill(n & 0xff))),
    seq: fc.oneof(fc.constant(0), fc.nat(), fc.constant(0xffffffff)),
  },
  { requiredKeys: ['data'] },
).map((r): HTTPChunk => ({ kind: ChunkKind.DATA, ...r }));

test('DATA is written byte for byte as protobufjs writes it, HTTPChunk and WsFrame', () => {
  fc.assert(
    fc.property(dataArb, fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(0xffffffff)), (chunk, stream) => {
      assert.ok(isPlainData(chunk));
      assert.equal(encodeDataChunk(chunk), viaProtobufjs(chunk));
      assert.equal(encodeWsDataFrame(stream, chunk), Buffer.from(WsFrameType.encode({ stream, chunk } as unknown as protobuf.Message).finish()));
    }),
    { seed: SEED, numRuns: 200 },
  );
});

test('DATA read by hand equals what protobufjs reads, payload a view of the frame', () => {
  fc.assert(
    fc.property(dataArb, fc.integer({ min: 1, max: 300 }), (chunk, stream) => {
      const bytes = viaProtobufjs(chunk);
      const read = readDataChunk(bytes)!;
      assert.is(read.kind, ChunkKind.DATA);
      assert.is(read.seq ?? 0, chunk.seq ?? 0);
      assert.equal(Buffer.from(read.data!), Buffer.from(chunk.data!));
      if (read.data!.byteLength > 0) assert.is(read.data!.buffer, bytes.buffer);
      const frame = readWsDataFrame(Buffer.from(WsFrameType.encode({ stream, chunk } as unknown as protobuf.Message).finish()))!;
      assert.is(frame.stream, stream);
      assert.equal(Buffer.from(frame.chunk.data!), Buffer.from(chunk.data!));
    }),
    { seed: SEED, numRuns: 200 },
  );
});

test('a DATA frame laid out otherwise is left to protobufjs, which reads it the same', () => {
  const payload = Buffer.from('hello');
  const cases: Array<[string, Buffer]> = [
    ['seq before data', Buffer.concat([Buffer.from([0x08, 0x02, 0x50, 0x07, 0x3a, 0x05]), payload])],
    ['kind last', Buffer.concat([Buffer.from([0x3a, 0x05]), payload, Buffer.from([0x08, 0x02])])],
    ['data twice', Buffer.concat([Buffer.from([0x08, 0x02, 0x3a, 0x01, 0x41, 0x3a, 0x05]), payload])],
    ['over-long length varint', Buffer.concat([Buffer.from([0x08, 0x02, 0x3a, 0x85, 0x80, 0x80, 0x80, 0x80, 0x00]), payload])],
    ['unknown field after seq', Buffer.concat([Buffer.from([0x08, 0x02, 0x3a, 0x05]), payload, Buffer.from([0x50, 0x01, 0x60, 0x01])])],
  ];
  for (const [what, bytes] of cases) {
    assert.is(readDataChunk(bytes), undefined, what);
    const chunk = decodeChunk(bytes);
    assert.is(chunk.kind, ChunkKind.DATA, what);
    assert.is(Buffer.from(chunk.data!).toString(), 'hello', what);
  }
});

test('a length that runs past the frame is refused, by hand and by protobufjs', () => {
  const bytes = Buffer.from([0x08, 0x02, 0x3a, 0x10, 0x41]);
  assert.is(readDataChunk(bytes), undefined);
  assert.throws(() => decodeChunk(bytes), (err: Error) => (err as { code?: string }).code === 'ERR_PROTOCOL');
});

test('DATA above MAX_CHUNK_DATA_BYTES read by hand is still refused', () => {
  const big = encodeChunk({ kind: ChunkKind.DATA, data: new Uint8Array(MAX_CHUNK_DATA_BYTES + 1) });
  assert.ok(readDataChunk(big));
  assert.throws(() => decodeChunk(big), (err: Error) => (err as { code?: string }).code === 'ERR_PROTOCOL');
  const ws = WS_CODECS['jetty.v1.proto'];
  assert.throws(() => ws.decode(Buffer.from(ws.encode({ stream: 1, chunk: { kind: ChunkKind.DATA, data: new Uint8Array(MAX_CHUNK_DATA_BYTES + 1) } })), true), (err: Error) => (err as { code?: string }).code === 'ERR_PROTOCOL');
});

test('a DATA chunk with any other field set is written by protobufjs', () => {
  const chunk: HTTPChunk = { kind: ChunkKind.DATA, data: Buffer.from('x'), reason: 'odd' };
  assert.not.ok(isPlainData(chunk));
  assert.equal(Buffer.from(encodeChunk(chunk)), viaProtobufjs(chunk));
  assert.not.ok(isPlainData({ kind: ChunkKind.END }));
});

test('DATA on the WebSocket control stream is still refused', () => {
  const ws = WS_CODECS['jetty.v1.proto'];
  const bytes = encodeWsDataFrame(0, { kind: ChunkKind.DATA, data: Buffer.from('x') });
  assert.throws(() => ws.decode(bytes, true), (err: Error) => (err as { code?: string }).code === 'ERR_PROTOCOL');
});

test('a gathered chunk is framed in place, byte for byte as protobufjs, for either transport and any seq', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 2000 }), { maxLength: 6 }), fc.nat(), fc.integer({ min: 1, max: 1 << 20 }), (parts, seq, stream) => {
      const total = parts.reduce((n, p) => n + p.byteLength, 0);
      const chunk = gatherData(parts, total);
      const whole = Buffer.concat(parts);
      assert.equal(Buffer.from(chunk.data!), whole);
      const plain: HTTPChunk = { kind: ChunkKind.DATA, data: whole, seq };
      const grpc = encodeDataChunk({ ...chunk, seq });
      assert.is(grpc.buffer, chunk.data!.buffer);
      assert.equal(Buffer.from(grpc), viaProtobufjs(plain));
      const ws = encodeWsDataFrame(stream, chunk);
      assert.is(ws.buffer, chunk.data!.buffer);
      assert.equal(Buffer.from(ws), Buffer.from(WsFrameType.encode({ stream, chunk: { kind: ChunkKind.DATA, data: whole } } as unknown as protobuf.Message).finish()));
      assert.equal(Buffer.from(chunk.data!), whole, 'the payload is untouched by its frames');
    }),
    { seed: SEED, numRuns: 100 },
  );
});

// Framing in place writes around the payload: a chunk cut from a gathered one must not be framed in
// place, or its header and tail would overwrite the bytes of its neighbours.
test('a chunk cut from a gathered one is copied, and leaves its neighbours intact', () => {
  const chunk = gatherData([Buffer.from('aaaabbbbcccc')], 12);
  const middle = { kind: ChunkKind.DATA, data: chunk.data!.subarray(4, 8), seq: 300 };
  const frame = encodeDataChunk(middle);
  assert.is.not(frame.buffer, chunk.data!.buffer);
  assert.is(Buffer.from(chunk.data!).toString(), 'aaaabbbbcccc');
  assert.is(Buffer.from(decodeChunk(frame).data!).toString(), 'bbbb');
});

test.run();
