import * as assert from 'uvu/assert';
import { ChunkKind } from '../../src/codec/http-chunk.js';
import {
  decodeAgentMessage,
  decodeChunk,
  decodeEdgeMessage,
  encodeAgentMessage,
  encodeChunk,
  encodeEdgeMessage,
  type EdgeMessage,
} from '../../src/codec/tunnel-codec.js';
import { agentMessageArb, chunkArb, edgeMessageArb } from '../helpers/frame-arbitraries.js';
import { assertSaneChunk, canonical, footprint, fuzz, FUZZ_DEADLINE_MS, Outcomes, protobufInputArb } from '../helpers/fuzz.js';
import { suite } from '../helpers/suite.js';

/**
 * The gRPC codec (HTTPChunk on ForwardHTTP, AgentMessage / EdgeMessage on Register) against valid
 * encodings broken every way the mutators know, and random bytes. Whatever comes in: only protocol
 * errors are thrown; what decodes is bounded (DATA, header lines, no more than came in), re-encodes
 * to itself and is taken by the HTTP layers behind; and a valid frame still decodes afterwards.
 */
const test = suite('fuzz/tunnel-codec', {}, FUZZ_DEADLINE_MS);

const VALID_CHUNK = encodeChunk({ kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'content-type', value: 'text/plain' }] });
const VALID_AGENT = encodeAgentMessage({ hello: { name: 'demo', version: '1', window: 1 << 20 } });
const VALID_EDGE = encodeEdgeMessage({ ping: { nonce: 7 } });

/** Exactly one member of a oneof is set, as protobuf has it (the last one on the wire). */
function assertOneMember(msg: object, members: readonly string[]): void {
  const set = members.filter((m) => (msg as Record<string, unknown>)[m] != null);
  assert.is(set.length, 1, `members set: ${set.join(', ') || 'none'}`);
}

test('HTTPChunk: mutated and random frames throw only protocol errors; what decodes is bounded and usable', async () => {
  const outcomes = new Outcomes();
  await fuzz(protobufInputArb(chunkArb.map(encodeChunk)), (bytes) => {
    const chunk = outcomes.run(() => decodeChunk(bytes));
    if (chunk) {
      assert.ok(footprint(chunk) <= bytes.byteLength, 'no more out than in');
      assertSaneChunk(chunk);
      assert.equal(canonical(decodeChunk(encodeChunk(chunk))), canonical(chunk), 'a decoded chunk re-encodes to itself');
    }
    assert.is(decodeChunk(VALID_CHUNK).status, 200);
  });
  outcomes.assertMixed();
});

test('AgentMessage: mutated and random frames throw only protocol errors; one member set, bounded', async () => {
  const outcomes = new Outcomes();
  await fuzz(protobufInputArb(agentMessageArb.map(encodeAgentMessage)), (bytes) => {
    const msg = outcomes.run(() => decodeAgentMessage(bytes));
    if (msg) {
      assert.ok(footprint(msg) <= bytes.byteLength, 'no more out than in');
      assertOneMember(msg, ['hello', 'pong', 'drain']);
      assert.equal(canonical(decodeAgentMessage(encodeAgentMessage(msg))), canonical(msg), 're-encodes to itself');
    }
    assert.is(decodeAgentMessage(VALID_AGENT).hello?.name, 'demo');
  });
  outcomes.assertMixed();
});

test('EdgeMessage: mutated and random frames throw only protocol errors; one member set, Open carries a usable request head', async () => {
  const outcomes = new Outcomes();
  await fuzz(protobufInputArb(edgeMessageArb.map(encodeEdgeMessage)), (bytes) => {
    const msg: EdgeMessage | undefined = outcomes.run(() => decodeEdgeMessage(bytes));
    if (msg) {
      assert.ok(footprint(msg) <= bytes.byteLength, 'no more out than in');
      assertOneMember(msg, ['registered', 'open', 'cancel', 'ping', 'drain']);
      if (msg.open) {
        assert.ok(msg.open.headers.kind === ChunkKind.HEADERS && !!msg.open.headers.method, 'Open carries request HEADERS');
        assertSaneChunk(msg.open.headers);
      }
      assert.equal(canonical(decodeEdgeMessage(encodeEdgeMessage(msg))), canonical(msg), 're-encodes to itself');
    }
    assert.is(decodeEdgeMessage(VALID_EDGE).ping?.nonce, 7);
  });
  outcomes.assertMixed();
});

test.run();
