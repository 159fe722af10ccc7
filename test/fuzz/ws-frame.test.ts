import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { encodeWsFrameJson, encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO, type WsFrame } from '../../src/codec/ws-frame.js';
import { wsFrameArb } from '../helpers/frame-arbitraries.js';
import { assertSaneChunk, canonical, footprint, fuzz, FUZZ_DEADLINE_MS, jsonFrameInputArb, Outcomes, protobufInputArb } from '../helpers/fuzz.js';
import { suite } from '../helpers/suite.js';

/**
 * Both WebSocket codecs (jetty.v1.proto binary WsFrames, jetty.v1.json legacy text frames), through
 * the decode function the mux calls, against mutated valid frames and random input. Beyond "only
 * protocol errors": what decodes is bounded and sane, re-encodes to itself, and the two codecs agree
 * (a frame one accepts, the other carries unchanged), so neither side of a session can be handed a
 * frame its peer's codec could not have sent.
 */
const test = suite('fuzz/ws-frame', {}, FUZZ_DEADLINE_MS);

const proto = WS_CODECS[WS_PROTOCOL_PROTO];
const json = WS_CODECS[WS_PROTOCOL_JSON];
const VALID_PROTO = Buffer.from(encodeWsFrameProto({ stream: 0, agent: { pong: { nonce: 9 } } }));
const VALID_JSON = Buffer.from(encodeWsFrameJson({ stream: 0, agent: { pong: { nonce: 9 } } }));

/** The fields of a chunk its kind uses: what both codecs carry (`seq` is gRPC's; WebSocket has none). */
function relevant(chunk: HTTPChunk): HTTPChunk {
  switch (chunk.kind) {
    case ChunkKind.HEADERS:
      return chunk.method
        ? { kind: chunk.kind, exchangeId: chunk.exchangeId, method: chunk.method, target: chunk.target, headers: chunk.headers }
        : { kind: chunk.kind, status: chunk.status, headers: chunk.headers };
    case ChunkKind.DATA:
      return { kind: chunk.kind, data: chunk.data };
    case ChunkKind.TRAILERS:
      return { kind: chunk.kind, headers: chunk.headers };
    case ChunkKind.RESET:
      return { kind: chunk.kind, code: chunk.code, reason: chunk.reason };
    default:
      return { kind: chunk.kind };
  }
}

function comparable(frame: WsFrame): unknown {
  return canonical('chunk' in frame ? { stream: frame.stream, chunk: relevant(frame.chunk) } : frame);
}

function assertSaneFrame(frame: WsFrame): void {
  assert.ok(Number.isInteger(frame.stream) && frame.stream >= 0 && frame.stream <= 0xffff_ffff, `stream ${frame.stream}`);
  if ('chunk' in frame) {
    assert.ok(frame.stream !== 0, 'chunk on stream 0');
    assertSaneChunk(frame.chunk);
  } else if ('credit' in frame) {
    assert.ok(Number.isInteger(frame.credit) && frame.credit > 0 && frame.credit <= 0xffff_ffff, `credit ${frame.credit}`);
  } else {
    assert.is(frame.stream, 0);
    const msg = 'agent' in frame ? frame.agent : frame.edge;
    const set = Object.entries(msg).filter(([, v]) => v != null);
    assert.is(set.length, 1, `control members set: ${set.map(([k]) => k).join(', ') || 'none'}`);
    assert.ok(!('edge' in frame && frame.edge.open), 'Open is not used on WebSocket');
  }
}

test('jetty.v1.proto: mutated and random messages throw only protocol errors; what decodes is sane, and the JSON codec carries it', async () => {
  const outcomes = new Outcomes();
  await fuzz(fc.tuple(protobufInputArb(wsFrameArb.map(encodeWsFrameProto)), fc.nat({ max: 40 })), ([bytes, textFlag]) => {
    // Now and then the same bytes as a text message, which the protobuf subprotocol refuses.
    const frame = outcomes.run(() => proto.decode(bytes, textFlag !== 0));
    if (frame) {
      assert.ok(footprint(frame) <= bytes.byteLength, 'no more out than in');
      assertSaneFrame(frame);
      assert.equal(comparable(proto.decode(Buffer.from(encodeWsFrameProto(frame)), true)), comparable(frame), 're-encodes to itself');
      assert.equal(comparable(json.decode(Buffer.from(encodeWsFrameJson(frame)), false)), comparable(frame), 'the JSON codec carries it');
    }
    assert.equal(canonical(proto.decode(VALID_PROTO, true)), { agent: { pong: { nonce: 9 } } });
  });
  outcomes.assertMixed();
});

const validJsonArb = wsFrameArb.filter((f) => !('edge' in f && f.edge.open)).map(encodeWsFrameJson);

test('jetty.v1.json: mutated and random messages throw only protocol errors; what decodes is sane, and the protobuf codec carries it', async () => {
  const outcomes = new Outcomes();
  await fuzz(fc.tuple(jsonFrameInputArb(validJsonArb), fc.nat({ max: 40 })), ([bytes, binaryFlag]) => {
    const frame = outcomes.run(() => json.decode(bytes, binaryFlag === 0));
    if (frame) {
      assert.ok(footprint(frame) <= bytes.byteLength, 'no more out than in');
      assertSaneFrame(frame);
      assert.equal(comparable(json.decode(Buffer.from(encodeWsFrameJson(frame)), false)), comparable(frame), 're-encodes to itself');
      assert.equal(comparable(proto.decode(Buffer.from(encodeWsFrameProto(frame)), true)), comparable(frame), 'the protobuf codec carries it');
    }
    assert.equal(canonical(json.decode(VALID_JSON, false)), { agent: { pong: { nonce: 9 } } });
  });
  outcomes.assertMixed();
});

test.run();
