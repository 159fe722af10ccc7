import * as assert from 'uvu/assert';
import { ChunkKind, dataChunk, END_CHUNK, isFolded, unfold, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { decodeAgentMessage, decodeChunk, decodeEdgeMessage, encodeAgentMessage, encodeChunk, encodeEdgeMessage, MAX_CHUNK_DATA_BYTES } from '../../src/codec/tunnel-codec.js';
import { WS_CODECS } from '../../src/codec/ws-frame.js';
import { suite } from '../helpers/suite.js';

const test = suite('codec/folded-chunks');

/** The chunk after a trip through every codec: HTTPChunk protobuf, WsFrame protobuf, WsFrame JSON. */
function roundTrips(chunk: HTTPChunk): Array<[string, () => HTTPChunk]> {
  return [
    ['HTTPChunk', () => decodeChunk(encodeChunk(chunk))],
    ...Object.values(WS_CODECS).map((codec): [string, () => HTTPChunk] => [
      codec.name,
      () => {
        const frame = codec.decode(Buffer.from(codec.encode({ stream: 1, chunk })), codec.binary);
        if (!('chunk' in frame)) throw new Error('not a chunk frame');
        return frame.chunk;
      },
    ]),
  ];
}

const isProtocol = (err: { code?: string }): boolean => err.code === 'ERR_PROTOCOL';

test('folded chunks survive every codec and read as the chunks they stand for', () => {
  const head: HTTPChunk = { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: '5' }], data: Buffer.from('hello'), end: true };
  const last: HTTPChunk = { ...dataChunk(Buffer.from('tail')), end: true };
  const trailers: HTTPChunk = { kind: ChunkKind.TRAILERS, headers: [{ name: 'grpc-status', value: '0' }], end: true };
  for (const [codec, trip] of roundTrips(head)) {
    const parts = unfold(trip());
    assert.equal(parts.map((p) => p.kind), [ChunkKind.HEADERS, ChunkKind.DATA, ChunkKind.END], codec);
    assert.is(Buffer.from(parts[1].data!).toString(), 'hello', codec);
    assert.is(parts[0].status, 200, codec);
    assert.is(isFolded(parts[0]), false, codec);
  }
  for (const [codec, trip] of roundTrips(last)) assert.equal(unfold(trip()).map((p) => p.kind), [ChunkKind.DATA, ChunkKind.END], codec);
  for (const [codec, trip] of roundTrips(trailers)) assert.equal(unfold(trip()).map((p) => p.kind), [ChunkKind.TRAILERS, ChunkKind.END], codec);
});

test('an unfolded chunk stays unfolded in every codec, and the JSON frame does not name the new fields', () => {
  const head: HTTPChunk = { kind: ChunkKind.HEADERS, status: 204, headers: [] };
  for (const [codec, trip] of roundTrips(head)) assert.is(isFolded(trip()), false, codec);
  for (const [codec, trip] of roundTrips(dataChunk(Buffer.from('x')))) assert.is(isFolded(trip()), false, codec);
  const json = String(WS_CODECS['jetty.v1.json'].encode({ stream: 1, chunk: head }));
  assert.not.match(json, /"end"|"data"/);
});

test('a request head carries END but never data; 1xx HEADERS, END and RESET are never folded: a ProtocolError in every codec', () => {
  const get: HTTPChunk = { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], end: true };
  for (const [codec, trip] of roundTrips(get)) assert.equal(unfold(trip()).map((p) => p.kind), [ChunkKind.HEADERS, ChunkKind.END], codec);
  const refused: HTTPChunk[] = [
    { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'POST', target: '/', headers: [], data: Buffer.from('body') },
    { kind: ChunkKind.HEADERS, status: 100, headers: [], end: true },
    { kind: ChunkKind.HEADERS, status: 103, headers: [], data: Buffer.from('x') },
    { ...END_CHUNK, end: true },
    { kind: ChunkKind.RESET, code: 1, reason: 'x', end: true },
  ];
  for (const chunk of refused) {
    for (const [codec, trip] of roundTrips(chunk)) assert.throws(trip, isProtocol, `${codec}: ${JSON.stringify({ ...chunk, data: undefined })}`);
  }
});

test('the DATA a folded head carries is bounded as DATA is', () => {
  const at = { kind: ChunkKind.HEADERS, status: 200, headers: [], data: new Uint8Array(MAX_CHUNK_DATA_BYTES), end: true };
  assert.is(decodeChunk(encodeChunk(at)).data!.byteLength, MAX_CHUNK_DATA_BYTES);
  assert.throws(() => decodeChunk(encodeChunk({ ...at, data: new Uint8Array(MAX_CHUNK_DATA_BYTES + 1) })), isProtocol);
});

test('Hello.folded_chunks survives every codec; an agent that never sets it reads as false', () => {
  for (const folded of [true, undefined]) {
    const hello = { name: 'demo', version: '1', ...(folded ? { foldedChunks: true } : {}) };
    assert.is(decodeAgentMessage(encodeAgentMessage({ hello })).hello?.foldedChunks === true, folded === true, 'protobuf');
    for (const codec of Object.values(WS_CODECS)) {
      const a = codec.decode(Buffer.from(codec.encode({ stream: 0, agent: { hello } })), codec.binary);
      assert.is('agent' in a && a.agent.hello?.foldedChunks === true, folded === true, codec.name);
    }
  }
});

test('Registered.folded_chunks survives every codec; an edge that never sets it reads as false', () => {
  const registered = { name: 'demo', url: 'http://demo.localhost:8080', sessionId: 'sid' };
  for (const folded of [true, undefined]) {
    const r = { ...registered, ...(folded ? { foldedChunks: true } : {}) };
    assert.is(decodeEdgeMessage(encodeEdgeMessage({ registered: r })).registered?.foldedChunks === true, folded === true, 'protobuf');
    for (const codec of Object.values(WS_CODECS)) {
      const e = codec.decode(Buffer.from(codec.encode({ stream: 0, edge: { registered: r } })), codec.binary);
      assert.is('edge' in e && e.edge.registered?.foldedChunks === true, folded === true, codec.name);
    }
  }
});

test.run();
