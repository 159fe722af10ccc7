import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { ChunkOrder } from '../../src/codec/chunk-order.js';
import { ChunkKind, END_CHUNK, resetChunk, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { fuzz, FUZZ_DEADLINE_MS, Outcomes } from '../helpers/fuzz.js';
import { suite } from '../helpers/suite.js';

/**
 * The stateful decoder ChunkOrder (the order of one exchange direction) fed valid sequences
 * with chunk kinds reordered, doubled, dropped or inserted: only protocol errors, what it accepts
 * obeys the grammar, and a fresh decoder takes a valid input afterwards.
 */
const test = suite('fuzz/chunk-order', {}, FUZZ_DEADLINE_MS);

const REQUEST_HEAD: HTTPChunk = { kind: ChunkKind.HEADERS, exchangeId: 'x', method: 'GET', target: '/', headers: [] };
const head = (status: number): HTTPChunk => ({ kind: ChunkKind.HEADERS, status, headers: [] });
const DATA: HTTPChunk = { kind: ChunkKind.DATA, data: new Uint8Array(1) };
const TRAILERS: HTTPChunk = { kind: ChunkKind.TRAILERS, headers: [] };
const RESET = resetChunk(ResetCode.CANCEL, '');

/** Valid sequences of one direction: `[direction, chunks]`, request ones opened by their HEADERS. */
const validSequenceArb: fc.Arbitrary<['request' | 'response', HTTPChunk[]]> = fc.oneof(
  fc
    .tuple(fc.array(fc.constantFrom(100, 103), { maxLength: 2 }), fc.integer({ min: 200, max: 599 }), fc.nat({ max: 4 }), fc.boolean())
    .map(([infos, status, data, trailers]): ['response', HTTPChunk[]] => ['response', [...infos.map(head), head(status), ...Array<HTTPChunk>(data).fill(DATA), ...(trailers ? [TRAILERS] : []), END_CHUNK]]),
  fc
    .tuple(fc.nat({ max: 4 }), fc.boolean())
    .map(([data, trailers]): ['request', HTTPChunk[]] => ['request', [REQUEST_HEAD, ...Array<HTTPChunk>(data).fill(DATA), ...(trailers ? [TRAILERS] : []), END_CHUNK]]),
);

type OrderEdit = { op: 'swap'; a: number; b: number } | { op: 'double'; a: number } | { op: 'drop'; a: number } | { op: 'insert'; a: number; chunk: HTTPChunk };
const anyChunkArb = fc.constantFrom(REQUEST_HEAD, head(100), head(200), DATA, TRAILERS, END_CHUNK, RESET, { kind: 0 as ChunkKind }, { kind: 9 as ChunkKind });
const orderEditArb: fc.Arbitrary<OrderEdit> = fc.oneof(
  fc.record({ op: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant('double' as const), a: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), a: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), a: fc.nat(), chunk: anyChunkArb }),
);

function reorder(chunks: HTTPChunk[], edits: OrderEdit[]): HTTPChunk[] {
  const out = [...chunks];
  for (const e of edits) {
    const a = e.a % (out.length + 1);
    if (e.op === 'insert') out.splice(a, 0, e.chunk);
    else if (out.length === 0) continue;
    else if (e.op === 'swap') [out[a % out.length], out[e.b % out.length]] = [out[e.b % out.length], out[a % out.length]];
    else if (e.op === 'double') out.splice(a % out.length, 0, out[a % out.length]);
    else out.splice(a % out.length, 1);
  }
  return out;
}

/** The grammar of one direction (DESIGN.md §3) as a regular expression over kind letters, independent of ChunkOrder. */
function letter(c: HTTPChunk): string {
  if (c.kind === ChunkKind.HEADERS) return c.method ? 'Q' : c.status! < 200 ? 'I' : 'H';
  return ({ [ChunkKind.DATA]: 'D', [ChunkKind.TRAILERS]: 'T', [ChunkKind.END]: 'E', [ChunkKind.RESET]: 'R' } as Record<number, string>)[c.kind] ?? '?';
}
const GRAMMAR = { response: /^(?:I*(?:H(?:D*(?:T?(?:E)?)?)?)?)R?$/, request: /^(?:D*(?:T?(?:E)?)?)R?$/ };

test('ChunkOrder: reordered, doubled, dropped and inserted kinds throw only ProtocolError, and what it accepts obeys the grammar', async () => {
  const outcomes = new Outcomes();
  await fuzz(fc.tuple(validSequenceArb, fc.array(orderEditArb, { maxLength: 3 })), ([[direction, valid], edits]) => {
    const chunks = reorder(valid, edits);
    // Request chunks after the opening HEADERS, which the mux consumed to open the exchange.
    const body = direction === 'request' ? chunks.slice(chunks[0] === REQUEST_HEAD ? 1 : 0) : chunks;
    const order = new ChunkOrder(direction, direction === 'request');
    const accepted: HTTPChunk[] = [];
    outcomes.run(() => {
      for (const c of body) {
        order.accept(c);
        accepted.push(c);
      }
    });
    const upToReset = accepted.slice(0, accepted.findIndex((c) => c.kind === ChunkKind.RESET) + 1 || accepted.length);
    assert.match(upToReset.map(letter).join(''), GRAMMAR[direction]);
    const fresh = new ChunkOrder(direction, direction === 'request');
    for (const c of direction === 'request' ? valid.slice(1) : valid) fresh.accept(c);
    assert.is(fresh.status, 'ended');
  });
  outcomes.assertMixed();
});

test.run();
