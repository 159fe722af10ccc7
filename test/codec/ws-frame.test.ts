import * as assert from 'uvu/assert';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO } from '../../src/codec/ws-frame.js';
import { suite } from '../helpers/suite.js';

const test = suite('codec/ws-frame');
const proto = WS_CODECS[WS_PROTOCOL_PROTO];
const json = WS_CODECS[WS_PROTOCOL_JSON];
const isProtocolError = (err: { code: string }): boolean => err.code === 'ERR_PROTOCOL';

// A WsFrame's control message skipped the checks the gRPC codec makes: an empty AgentMessage, one
// with two members, or an Open (gRPC only; the JSON encoder throws on it) decoded as a frame.
test('control messages in a protobuf WsFrame are checked as on gRPC: one member, no Open', () => {
  assert.throws(() => proto.decode(Buffer.from([0x08, 0x00, 0x22, 0x00]), true), isProtocolError);
  assert.throws(() => proto.decode(Buffer.from([0x08, 0x00, 0x2a, 0x00]), true), isProtocolError);
  const open = encodeWsFrameProto({ stream: 0, edge: { open: { headers: { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [] } } } });
  assert.throws(() => proto.decode(Buffer.from(open), true), isProtocolError);
  const hello = encodeWsFrameProto({ stream: 0, agent: { hello: { name: 'demo', version: '1' } } });
  const pong = encodeWsFrameProto({ stream: 0, agent: { pong: { nonce: 4 } } });
  // Two AgentMessages merged into one field: protobuf keeps the last member.
  const both = Buffer.concat([hello, Buffer.from(pong).subarray(2)]);
  const frame = proto.decode(both, true);
  assert.ok('agent' in frame);
  assert.equal(Object.keys('agent' in frame ? frame.agent : {}), ['pong']);
});

// JSON numbers were taken as they came: a credit of 0.5, a stream id of 2^53 or a Hello window of
// 1e300 decoded, though no protobuf peer can send them (fractional credit arithmetic, a window that
// made every chunk cost 6e295 bytes).
test('JSON numbers must fit the protobuf field they stand for', () => {
  const decode = (frame: object) => json.decode(Buffer.from(JSON.stringify(frame)), false);
  for (const bad of [
    { stream: 1, type: 'credit', bytes: 0.5 },
    { stream: 1, type: 'credit', bytes: 2 ** 32 },
    { stream: 2 ** 53, type: 'end' },
    { stream: 0, type: 'hello', name: 'demo', window: 1e300 },
    { stream: 0, type: 'pong', nonce: -1 },
    { stream: 1, type: 'reset', code: 2 ** 31 },
    { stream: 1, type: 'headers', status: 200.5, headers: [] },
  ]) {
    assert.throws(() => decode(bad), isProtocolError, JSON.stringify(bad));
  }
  assert.equal(decode({ stream: 2 ** 32 - 1, type: 'credit', bytes: 2 ** 32 - 1 }), { stream: 2 ** 32 - 1, credit: 2 ** 32 - 1 });
  assert.is(decode({ stream: 1, type: 'reset', code: -1 }).stream, 1);
});

// JSON escapes spelled lone surrogates ("\ud800") that no protobuf peer can send: the same frame
// meant different text on the two subprotocols.
test('JSON strings decode well-formed: a lone surrogate becomes U+FFFD, pairs stay', () => {
  const frame = json.decode(Buffer.from('{"stream":1,"type":"reset","code":1,"reason":"a\\ud800b\\udc00c\\ud83d\\ude00"}'), false);
  assert.is('chunk' in frame && frame.chunk.reason, 'a\ufffdb\ufffdc\u{1f600}');
});

test.run();
