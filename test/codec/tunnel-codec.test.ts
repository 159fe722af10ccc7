import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { ChunkKind, ExchangeKind, exchangeKindOf, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import {
  decodeAgentMessage,
  decodeChunk,
  decodeEdgeMessage,
  encodeAgentMessage,
  encodeChunk,
  encodeEdgeMessage,
  MAX_CHUNK_DATA_BYTES,
  MAX_FRAME_BYTES,
  MAX_HEADER_LINES,
  validateChunk,
} from '../../src/codec/tunnel-codec.js';
import { WS_CODECS } from '../../src/codec/ws-frame.js';

const test = suite('codec/tunnel-codec');
const SEED = 20261126;

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/);
const fieldValue = fc.stringMatching(/^[\x20-\x7e\t]{0,40}$/);
const header = fc.record({ name: token, value: fieldValue });

const chunkArb: fc.Arbitrary<HTTPChunk> = fc.oneof(
  fc.record({
    kind: fc.constant(ChunkKind.HEADERS),
    exchangeId: fc.uuid(),
    method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS'),
    target: fc.stringMatching(/^\/[a-z0-9/?=&%-]{0,30}$/),
    headers: fc.array(header, { maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant(ChunkKind.HEADERS), status: fc.integer({ min: 100, max: 599 }), headers: fc.array(header, { maxLength: 8 }) }),
  fc.record({ kind: fc.constant(ChunkKind.DATA), data: fc.uint8Array({ minLength: 1, maxLength: 4096 }) }),
  fc.record({ kind: fc.constant(ChunkKind.TRAILERS), headers: fc.array(header, { minLength: 1, maxLength: 4 }) }),
  fc.constant({ kind: ChunkKind.END }),
  fc.record({ kind: fc.constant(ChunkKind.RESET), code: fc.constantFrom(ResetCode.CANCEL, ResetCode.ORIGIN_ERROR), reason: fc.string({ maxLength: 30 }) }),
);

/** Compares a decoded chunk with its source, treating proto3 defaults as absent. */
function same(decoded: HTTPChunk, original: HTTPChunk): void {
  assert.is(decoded.kind, original.kind);
  assert.is(decoded.exchangeId || undefined, original.exchangeId || undefined);
  assert.is(decoded.method || undefined, original.method || undefined);
  assert.is(decoded.target || undefined, original.target || undefined);
  assert.is(decoded.status || undefined, original.status || undefined);
  assert.equal([...(decoded.headers ?? [])].map((h) => [h.name, h.value]), (original.headers ?? []).map((h) => [h.name, h.value]));
  assert.equal(Buffer.from(decoded.data ?? []), Buffer.from(original.data ?? []));
  assert.is(decoded.code || undefined, original.code || undefined);
  assert.is(decoded.reason || undefined, original.reason || undefined);
}

test('every HTTPChunk survives encode → decode', () => {
  fc.assert(
    fc.property(chunkArb, (chunk) => same(decodeChunk(encodeChunk(chunk)), chunk)),
    { seed: SEED, numRuns: 300 },
  );
});

test('repeated headers keep their order (two Set-Cookie stay two)', () => {
  const chunk: HTTPChunk = {
    kind: ChunkKind.HEADERS,
    status: 200,
    headers: [
      { name: 'Set-Cookie', value: 'a=1' },
      { name: 'X-Other', value: 'x' },
      { name: 'Set-Cookie', value: 'b=2' },
    ],
  };
  same(decodeChunk(encodeChunk(chunk)), chunk);
});

test('DATA bytes decode without base64 and without copying per byte', () => {
  const data = new Uint8Array(100_000).fill(7);
  const encoded = encodeChunk({ kind: ChunkKind.DATA, data });
  assert.ok(encoded.byteLength < data.byteLength + 16, 'raw bytes on the wire');
  assert.is(decodeChunk(encoded).data!.byteLength, data.byteLength);
});

test('a frame above the limit is rejected with ERR_FRAME_TOO_LARGE', () => {
  const encoded = encodeChunk({ kind: ChunkKind.DATA, data: new Uint8Array(MAX_FRAME_BYTES + 1) });
  assert.throws(() => decodeChunk(encoded), (err: { code: string }) => err.code === 'ERR_FRAME_TOO_LARGE');
});

test('garbage bytes are a ProtocolError, never a crash', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeChunk(bytes);
      } catch (err) {
        assert.ok(['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE'].includes((err as { code: string }).code), String(err));
      }
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('HEADERS that would inject header lines are refused', () => {
  const bad = encodeChunk({ kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'X', value: 'a\r\nInjected: 1' }] });
  assert.throws(() => decodeChunk(bad), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
  const badTarget = encodeChunk({ kind: ChunkKind.HEADERS, method: 'GET', target: 'http://evil/', headers: [] });
  assert.throws(() => decodeChunk(badTarget), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

// protobufjs decodes a missing bytes field to a shared empty array without byteLength: credit
// arithmetic on it gave NaN and switched the WebSocket credit check off.
test('a DATA chunk without its bytes field decodes with empty bytes', () => {
  const empty = decodeChunk(encodeChunk({ kind: ChunkKind.DATA }));
  assert.instance(empty.data, Uint8Array);
  assert.is(empty.data!.byteLength, 0);
});

test('a response status that is not an integer is refused', () => {
  const bad = encodeChunk({ kind: ChunkKind.HEADERS, status: 200, headers: [] });
  assert.is(decodeChunk(bad).status, 200);
  assert.throws(() => validateChunk({ kind: ChunkKind.HEADERS, status: 200.5, headers: [] }), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

test('control messages round-trip', () => {
  const hello = decodeAgentMessage(encodeAgentMessage({ hello: { name: 'demo', version: '1' } }));
  assert.is(hello.hello?.name, 'demo');
  const open = decodeEdgeMessage(
    encodeEdgeMessage({ open: { headers: { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [] } } }),
  );
  assert.is(open.open?.headers.exchangeId, 'x');
  assert.throws(() => decodeAgentMessage(new Uint8Array()), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

test('Hello.resume_secret and Registered.resume_secret survive every codec (protobuf, WsFrame, legacy JSON)', () => {
  const hello = { name: 'demo', version: '1', window: 262144, resume: 'sid', resumeSecret: 'hello-secret' };
  const registered = { name: 'demo', url: 'http://demo.localhost:8080', sessionId: 'sid', window: 262144, pingIntervalMs: 1000, resumeSecret: 'edge-secret' };
  assert.is(decodeAgentMessage(encodeAgentMessage({ hello })).hello?.resumeSecret, 'hello-secret');
  assert.is(decodeEdgeMessage(encodeEdgeMessage({ registered })).registered?.resumeSecret, 'edge-secret');
  for (const codec of Object.values(WS_CODECS)) {
    const a = codec.decode(Buffer.from(codec.encode({ stream: 0, agent: { hello } })), codec.binary);
    const e = codec.decode(Buffer.from(codec.encode({ stream: 0, edge: { registered } })), codec.binary);
    assert.is('agent' in a && a.agent.hello?.resumeSecret, 'hello-secret', codec.name);
    assert.is('edge' in e && e.edge.registered?.resumeSecret, 'edge-secret', codec.name);
  }
});

test('the exchange kind of an open message survives every codec; absent means http', () => {
  for (const exchangeKind of [undefined, ExchangeKind.HTTP, ExchangeKind.STREAM, ExchangeKind.DATAGRAM]) {
    const head: HTTPChunk = { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], exchangeKind };
    const want = exchangeKind ?? ExchangeKind.HTTP;
    assert.is(exchangeKindOf(decodeChunk(encodeChunk(head))), want, 'HTTPChunk');
    assert.is(exchangeKindOf(decodeEdgeMessage(encodeEdgeMessage({ open: { headers: head } })).open!.headers), want, 'Open');
    for (const codec of Object.values(WS_CODECS)) {
      const frame = codec.decode(Buffer.from(codec.encode({ stream: 1, chunk: head })), codec.binary);
      assert.is('chunk' in frame && exchangeKindOf(frame.chunk), want, codec.name);
    }
  }
  // The legacy JSON frame of an http exchange stays as the seed wrote it.
  assert.not.match(String(WS_CODECS['jetty.v1.json'].encode({ stream: 1, chunk: { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/' } })), /exchangeKind/);
});

test('an exchange kind this build does not know is a ProtocolError in every codec', () => {
  const head = { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [], exchangeKind: 7 as ExchangeKind };
  const isProtocol = (err: { code?: string }): boolean => err.code === 'ERR_PROTOCOL';
  assert.throws(() => decodeChunk(encodeChunk(head)), isProtocol);
  assert.throws(() => WS_CODECS['jetty.v1.proto'].decode(Buffer.from(WS_CODECS['jetty.v1.proto'].encode({ stream: 1, chunk: head })), true), isProtocol);
  for (const bad of ['"tcp"', '1', 'null']) {
    const text = `{"stream":1,"type":"headers","exchangeId":"x","method":"GET","target":"/","headers":[],"exchangeKind":${bad}}`;
    assert.throws(() => WS_CODECS['jetty.v1.json'].decode(Buffer.from(text), false), isProtocol, bad);
  }
});

// protobufjs keeps every member of a oneof it meets: a Hello followed by a Pong in one message
// decoded as both, so the edge took it for a Hello where any other protobuf peer sees a Pong.
test('a control message with two oneof members keeps only the last, as protobuf does', () => {
  const hello = encodeAgentMessage({ hello: { name: 'demo', version: '1' } });
  const pong = encodeAgentMessage({ pong: { nonce: 3 } });
  const agent = decodeAgentMessage(Buffer.concat([hello, pong]));
  assert.equal(Object.keys(agent), ['pong']);
  assert.is(agent.pong?.nonce, 3);
  const edge = decodeEdgeMessage(Buffer.concat([encodeEdgeMessage({ ping: { nonce: 1 } }), encodeEdgeMessage({ drain: { gracePeriodMs: 5 } })]));
  assert.equal(Object.keys(edge), ['drain']);
});

// An Open carrying response HEADERS or DATA decoded fine; the agent served it as a request and
// sent its origin `GET /`.
test('an Open whose chunk is not request HEADERS is refused', () => {
  for (const headers of [{ kind: ChunkKind.HEADERS, status: 200, headers: [] }, { kind: ChunkKind.DATA, data: new Uint8Array(1) }, { kind: ChunkKind.END }]) {
    assert.throws(() => decodeEdgeMessage(encodeEdgeMessage({ open: { headers } })), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
  }
  assert.throws(() => decodeEdgeMessage(Uint8Array.from([0x12, 0x00])), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

// A DATA chunk up to the frame limit (320 KiB) decoded, though senders split at 256 KiB and every
// buffer bound (EXCHANGE_BUFFER_BOUND_BYTES, the credit windows) counts chunks of at most that.
test('DATA above MAX_CHUNK_DATA_BYTES is refused, at the limit it decodes', () => {
  assert.is(decodeChunk(encodeChunk({ kind: ChunkKind.DATA, data: new Uint8Array(MAX_CHUNK_DATA_BYTES) })).data!.byteLength, MAX_CHUNK_DATA_BYTES);
  const over = encodeChunk({ kind: ChunkKind.DATA, data: new Uint8Array(MAX_CHUNK_DATA_BYTES + 1) });
  assert.ok(over.byteLength <= MAX_FRAME_BYTES);
  assert.throws(() => decodeChunk(over), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

// One frame of 5-byte header lines decoded to some 65,000 of them, each an object handed to the
// HTTP layer.
test('a chunk with more than MAX_HEADER_LINES header lines is refused', () => {
  const lines = (n: number) => Array.from({ length: n }, () => ({ name: 'a', value: '' }));
  assert.is(decodeChunk(encodeChunk({ kind: ChunkKind.TRAILERS, headers: lines(MAX_HEADER_LINES) })).headers!.length, MAX_HEADER_LINES);
  const over = encodeChunk({ kind: ChunkKind.HEADERS, status: 200, headers: lines(MAX_HEADER_LINES + 1) });
  assert.ok(over.byteLength <= MAX_FRAME_BYTES);
  assert.throws(() => decodeChunk(over), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

// The bound was checked on HEADERS and TRAILERS only: an END carrying 17,000 header lines decoded.
test('the header-line bound holds for chunks of every kind', () => {
  const lines = Array.from({ length: MAX_HEADER_LINES + 1 }, () => ({ name: 'a', value: '' }));
  for (const kind of [ChunkKind.DATA, ChunkKind.END, ChunkKind.RESET]) {
    assert.throws(() => decodeChunk(encodeChunk({ kind, headers: lines })), (err: { code: string }) => err.code === 'ERR_PROTOCOL', ChunkKind[kind]);
  }
});

// protobufjs cuts a string whose length claims more than the frame holds at the end of the frame,
// and reads a length of 2^32 + n as n: cut or forged frames decoded as valid, the fields after
// the string swallowed into it.
test('a length that lies about what follows is a ProtocolError, on strings, bytes and unknown fields', () => {
  const valid = Buffer.from(encodeChunk({ kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/a', headers: [{ name: 'a', value: 'b' }] }));
  assert.is(decodeChunk(valid).target, '/a');
  const at = valid.indexOf(Buffer.from('/a')) - 1;
  const lie = (length: number[]) => Buffer.concat([valid.subarray(0, at), Buffer.from(length), valid.subarray(at + 1)]);
  for (const length of [[100], [0x83, 0x80, 0x80, 0x80, 0x10], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]]) {
    assert.throws(() => decodeChunk(lie(length)), (err: { code: string }) => err.code === 'ERR_PROTOCOL', JSON.stringify(length));
  }
  const data = Buffer.from(encodeChunk({ kind: ChunkKind.DATA, data: new Uint8Array(4) }));
  assert.throws(() => decodeChunk(Buffer.concat([data.subarray(0, 3), Buffer.from([0x85, 0x80, 0x80, 0x80, 0x10]), data.subarray(4)])), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
  // An unknown length-delimited field (number 15) whose length runs past the end.
  assert.throws(() => decodeChunk(Buffer.concat([data, Buffer.from([0x7a, 0x09, 0x00])])), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

// From a Uint8Array (not a Buffer), protobufjs decoded bad UTF-8 to lone surrogates.
test('strings decode as Node decodes UTF-8 (never a lone surrogate), bytes as views of the frame', () => {
  const badReason = Uint8Array.from([0x08, ChunkKind.RESET, 0x4a, 0x03, 0xed, 0xa0, 0x80]);
  assert.not.match(decodeChunk(badReason).reason!, /[\ud800-\udfff]/);
  const frame = encodeChunk({ kind: ChunkKind.DATA, data: Uint8Array.from([1, 2, 3]) });
  assert.is(decodeChunk(frame).data!.buffer, frame.buffer);
});

// The strict reader slices strings and bytes from the frame itself: a frame that is a plain Uint8Array
// at an offset inside a larger buffer (not a Buffer) must decode the same as a Buffer of its own.
test('a frame inside a larger buffer decodes its strings and bytes from its own bytes', () => {
  const encoded = encodeChunk({ kind: ChunkKind.HEADERS, status: 200, end: true, data: Uint8Array.from([104, 105]), headers: [{ name: 'x-e', value: 'caf\u00e9 \u00fc' }] });
  const outer = new Uint8Array(encoded.byteLength + 16).fill(0xff);
  outer.set(encoded, 7);
  for (const frame of [outer.subarray(7, 7 + encoded.byteLength), Buffer.from(encoded)]) {
    const got = decodeChunk(frame);
    assert.equal(got.headers!.map((h) => [h.name, h.value]), [['x-e', 'caf\u00e9 \u00fc']]);
    assert.is(got.status, 200);
    assert.equal([...got.data!], [104, 105]);
    assert.is(got.data!.buffer, frame.buffer);
  }
});

// A request target with a space or a control character decoded, and the agent's http.request threw
// on it: the WebSocket session closed (1011) and, over gRPC, the throw escaped the agent's stream
// loop. An exchange id with a newline made the gRPC agent's Metadata.set throw the same way.
test('request HEADERS whose target or exchange id the HTTP and gRPC layers would refuse are refused', () => {
  const head = (target: string, exchangeId = 'x') => encodeChunk({ kind: ChunkKind.HEADERS, exchangeId, method: 'GET', target, headers: [] });
  for (const target of ['/a b', '/a\u0001', '/\u00e9', '/a\u007f', '/\u0100']) {
    assert.throws(() => decodeChunk(head(target)), (err: { code: string }) => err.code === 'ERR_PROTOCOL', JSON.stringify(target));
  }
  for (const id of ['a\nb', 'a b', 'x'.repeat(129)]) {
    assert.throws(() => decodeChunk(head('/', id)), (err: { code: string }) => err.code === 'ERR_PROTOCOL', JSON.stringify(id));
  }
  assert.is(decodeChunk(head('/a/b?c=%20&d=~')).target, '/a/b?c=%20&d=~');
  assert.is(decodeChunk(head('*', '')).target, '*');
});

test.run();
