import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { encodeWsFrameJson, encodeWsFrameProto, WS_CODECS, WS_PROTOCOL_JSON, WS_PROTOCOL_PROTO, type WsFrame } from '../../src/codec/ws-frame.js';
import { wsFrameArb } from '../helpers/frame-arbitraries.js';
import { assertSaneChunk, canonical, footprint, fuzz, FUZZ_DEADLINE_MS, hostileStringArb, mutate, mutationsArb, Outcomes, protobufInputArb } from '../helpers/fuzz.js';
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

test('jetty.v1.proto: mutated and random messages throw only protocol errors; what decodes is sane, and the JSON codec carries it', () => {
  const outcomes = new Outcomes();
  fuzz(
    fc.property(protobufInputArb(wsFrameArb.map(encodeWsFrameProto)), fc.nat({ max: 40 }), (bytes, textFlag) => {
      // Now and then the same bytes as a text message, which the protobuf subprotocol refuses.
      const frame = outcomes.run(() => proto.decode(bytes, textFlag !== 0));
      if (frame) {
        assert.ok(footprint(frame) <= bytes.byteLength, 'no more out than in');
        assertSaneFrame(frame);
        assert.equal(comparable(proto.decode(Buffer.from(encodeWsFrameProto(frame)), true)), comparable(frame), 're-encodes to itself');
        assert.equal(comparable(json.decode(Buffer.from(encodeWsFrameJson(frame)), false)), comparable(frame), 'the JSON codec carries it');
      }
      assert.equal(canonical(proto.decode(VALID_PROTO, true)), { agent: { pong: { nonce: 9 } } });
    }),
  );
  outcomes.assertMixed();
});

/** Values a JSON peer might put in any field. */
const jsonValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: hostileStringArb },
  { weight: 3, arbitrary: fc.constantFrom(-1, 0, 0.5, 1, 3, 200, 262_144, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 1e300, -0, null, true, [], {}) },
  { weight: 1, arbitrary: fc.array(fc.tuple(hostileStringArb, hostileStringArb), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 64 }) },
);
const keyArb = fc.oneof(
  fc.constantFrom('stream', 'type', 'data', 'headers', 'status', 'method', 'target', 'exchangeId', 'code', 'reason', 'bytes', 'name', 'window', 'nonce', 'gracePeriodMs'),
  hostileStringArb,
);
const typeArb = fc.oneof(fc.constantFrom('headers', 'data', 'trailers', 'end', 'reset', 'credit', 'hello', 'leave', 'pong', 'registered', 'ping', 'cancel', 'drain'), hostileStringArb);

type JsonMutation = { op: 'drop'; index: number } | { op: 'set'; key: string; value: unknown } | { op: 'type'; type: string };
const jsonMutationArb: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), index: fc.nat({ max: 16 }) }),
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: jsonValueArb }),
  fc.record({ op: fc.constant('type' as const), type: typeArb }),
);

function mutateJson(text: string, ms: JsonMutation[]): string {
  const obj = JSON.parse(text) as Record<string, unknown>;
  for (const m of ms) {
    const keys = Object.keys(obj);
    if (m.op === 'drop' && keys.length > 0) delete obj[keys[m.index % keys.length]];
    else if (m.op === 'set') obj[m.key] = m.value;
    else if (m.op === 'type') obj.type = m.type;
  }
  return JSON.stringify(obj);
}

const validJsonArb = wsFrameArb.filter((f) => !('edge' in f && f.edge.open)).map(encodeWsFrameJson);
const jsonInputArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(validJsonArb, fc.array(jsonMutationArb, { minLength: 1, maxLength: 4 })).map(([t, ms]) => Buffer.from(mutateJson(t, ms))) },
  // Text-level damage: flipped or cut bytes, two frames in one message.
  { weight: 4, arbitrary: fc.tuple(validJsonArb, mutationsArb).map(([t, ms]) => Buffer.from(ms.reduce(mutate, Buffer.from(t)))) },
  { weight: 1, arbitrary: fc.tuple(validJsonArb, validJsonArb).map(([a, b]) => Buffer.from(a + b)) },
  { weight: 2, arbitrary: validJsonArb.map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }).map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((t) => Buffer.from(t)) },
);

test('jetty.v1.json: mutated and random messages throw only protocol errors; what decodes is sane, and the protobuf codec carries it', () => {
  const outcomes = new Outcomes();
  fuzz(
    fc.property(jsonInputArb, fc.nat({ max: 40 }), (bytes, binaryFlag) => {
      const frame = outcomes.run(() => json.decode(bytes, binaryFlag === 0));
      if (frame) {
        assert.ok(footprint(frame) <= bytes.byteLength, 'no more out than in');
        assertSaneFrame(frame);
        assert.equal(comparable(json.decode(Buffer.from(encodeWsFrameJson(frame)), false)), comparable(frame), 're-encodes to itself');
        assert.equal(comparable(proto.decode(Buffer.from(encodeWsFrameProto(frame)), true)), comparable(frame), 'the protobuf codec carries it');
      }
      assert.equal(canonical(json.decode(VALID_JSON, false)), { agent: { pong: { nonce: 9 } } });
    }),
  );
  outcomes.assertMixed();
});

test.run();
