import fc from 'fast-check';
import { ChunkKind, ResetCode, type Header, type HTTPChunk } from '../../src/codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../../src/codec/tunnel-codec.js';
import type { WsFrame } from '../../src/codec/ws-frame.js';
import { hostileStringArb } from './fuzz.js';

/**
 * Valid protocol messages of every kind, the starting points of the fuzz suites' mutations. Names
 * and values are mostly well-formed, now and then hostile text, so a mutation can reach the checks
 * behind the wire format as well as the wire format itself.
 */

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}$/);
const fieldValue = fc.stringMatching(/^[\x20-\x7e\t]{0,24}$/);
const text = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 16 }) }, { weight: 1, arbitrary: hostileStringArb });
const u32 = fc.oneof(fc.nat({ max: 1000 }), fc.nat({ max: 0xffff_ffff }));

export const headerArb: fc.Arbitrary<Header> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ name: token, value: fieldValue }) },
  { weight: 1, arbitrary: fc.record({ name: hostileStringArb, value: hostileStringArb }) },
);
const headersArb = fc.array(headerArb, { maxLength: 6 });
const seqArb = fc.option(fc.nat({ max: 5 }), { nil: undefined });

export const chunkArb: fc.Arbitrary<HTTPChunk> = fc.oneof(
  fc.record(
    {
      kind: fc.constant(ChunkKind.HEADERS),
      exchangeId: fc.oneof(fc.uuid(), text),
      method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'PATCH') }, { weight: 1, arbitrary: text }),
      target: fc.oneof({ weight: 6, arbitrary: fc.stringMatching(/^\/[a-z0-9/?=&%.-]{0,24}$/) }, { weight: 1, arbitrary: text }),
      headers: headersArb,
      seq: seqArb,
    },
    { requiredKeys: ['kind', 'method', 'target', 'headers'] },
  ),
  fc.record({ kind: fc.constant(ChunkKind.HEADERS), status: fc.oneof(fc.integer({ min: 100, max: 599 }), u32), headers: headersArb, seq: seqArb }, { requiredKeys: ['kind', 'status', 'headers'] }),
  fc.record({ kind: fc.constant(ChunkKind.DATA), data: fc.uint8Array({ maxLength: 96 }), seq: seqArb }, { requiredKeys: ['kind', 'data'] }),
  fc.record({ kind: fc.constant(ChunkKind.TRAILERS), headers: headersArb, seq: seqArb }, { requiredKeys: ['kind', 'headers'] }),
  fc.record({ kind: fc.constant(ChunkKind.END), seq: seqArb }, { requiredKeys: ['kind'] }),
  fc.record(
    { kind: fc.constant(ChunkKind.RESET), code: fc.constantFrom(...Object.values(ResetCode).filter((v): v is ResetCode => typeof v === 'number')), reason: text, seq: seqArb },
    { requiredKeys: ['kind', 'code', 'reason'] },
  ),
);

export const agentMessageArb: fc.Arbitrary<AgentMessage> = fc.oneof(
  fc.record({
    hello: fc.record({ name: fc.oneof(fc.stringMatching(/^[a-z0-9]{1,12}$/), text), version: text, window: u32, resume: fc.oneof(fc.constant(''), fc.uuid(), text) }),
  }),
  fc.record({ pong: fc.record({ nonce: u32 }) }),
  fc.record({ drain: fc.record({ gracePeriodMs: u32 }) }),
);

/** Edge messages a WebSocket carries (all but Open). */
const wsEdgeMessageArb: fc.Arbitrary<EdgeMessage> = fc.oneof(
  fc.record({ registered: fc.record({ name: text, url: text, sessionId: fc.oneof(fc.uuid(), text), window: u32, pingIntervalMs: u32 }) }),
  fc.record({ cancel: fc.record({ exchangeId: fc.oneof(fc.uuid(), text), code: fc.nat({ max: 5 }) }) }),
  fc.record({ ping: fc.record({ nonce: u32 }) }),
  fc.record({ drain: fc.record({ gracePeriodMs: u32 }) }),
);

export const edgeMessageArb: fc.Arbitrary<EdgeMessage> = fc.oneof(
  { weight: 4, arbitrary: wsEdgeMessageArb },
  { weight: 2, arbitrary: chunkArb.filter((c) => c.kind === ChunkKind.HEADERS).map((headers) => ({ open: { headers } })) },
);

const streamIdArb = fc.oneof(fc.constantFrom(1, 3, 5), fc.nat({ max: 0xffff_ffff }));

export const wsFrameArb: fc.Arbitrary<WsFrame> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ stream: streamIdArb, chunk: chunkArb }) },
  { weight: 1, arbitrary: fc.record({ stream: streamIdArb, credit: fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), u32) }) },
  { weight: 2, arbitrary: agentMessageArb.map((agent) => ({ stream: 0 as const, agent })) },
  { weight: 2, arbitrary: wsEdgeMessageArb.map((edge) => ({ stream: 0 as const, edge })) },
);
