import * as assert from 'uvu/assert';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import { encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_PROTO } from '../../src/codec/ws-frame.js';
import { suite } from '../helpers/suite.js';

const test = suite('codec/ws-frame');
const proto = WS_CODECS[WS_PROTOCOL_PROTO];
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

test.run();
