import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { ChunkOrder } from '../../src/codec/chunk-order.js';
import { ChunkKind, END_CHUNK, resetChunk, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { ProtocolError } from '../../src/errors.js';

const test = suite('codec/chunk-order');

const H = (status: number): HTTPChunk => ({ kind: ChunkKind.HEADERS, status, headers: [] });
const REQ: HTTPChunk = { kind: ChunkKind.HEADERS, method: 'GET', target: '/', headers: [] };
const D: HTTPChunk = { kind: ChunkKind.DATA, data: new Uint8Array(0) };
const T: HTTPChunk = { kind: ChunkKind.TRAILERS, headers: [] };
const RESET = resetChunk(ResetCode.CANCEL, '');

function feed(order: ChunkOrder, chunks: HTTPChunk[]): void {
  for (const c of chunks) order.accept(c);
}

test('a response may have informational HEADERS, then HEADERS, DATA*, one TRAILERS, END', () => {
  const order = new ChunkOrder('response');
  feed(order, [H(100), H(103), H(200), D, D, T, END_CHUNK]);
  assert.is(order.status, 'ended');
  feed(new ChunkOrder('response'), [H(204), END_CHUNK]);
});

test('a request opened by its HEADERS goes on with its body', () => {
  const order = new ChunkOrder('request', true);
  feed(order, [D, T, END_CHUNK]);
  assert.is(order.status, 'ended');
  feed(new ChunkOrder('request'), [REQ, END_CHUNK]);
});

test('a 101 to an upgrade request is final: raw DATA* END follow', () => {
  const order = new ChunkOrder('response', false, true);
  feed(order, [H(100), H(101), D, D, END_CHUNK]);
  assert.is(order.status, 'ended');
  // An upgrade the origin refused is an ordinary response.
  feed(new ChunkOrder('response', false, true), [H(403), D, END_CHUNK]);
});

test('a 101 to a request that asked for no upgrade is ERR_PROTOCOL', () => {
  assert.throws(
    () => feed(new ChunkOrder('response'), [H(101)]),
    (err: unknown) => err instanceof ProtocolError && err.code === 'ERR_PROTOCOL',
  );
});

test('RESET is accepted at any point, even after END', () => {
  for (const before of [[], [H(200)], [H(200), T], [H(200), END_CHUNK]]) {
    const order = new ChunkOrder('response');
    feed(order, [...before, RESET]);
    assert.is(order.status, 'ended');
  }
});

const broken: Array<[string, ChunkOrder, HTTPChunk[]]> = [
  ['DATA before HEADERS', new ChunkOrder('response'), [D]],
  ['END before HEADERS', new ChunkOrder('response'), [END_CHUNK]],
  ['a second final HEADERS', new ChunkOrder('response'), [H(200), H(200)]],
  ['an informational HEADERS after the final one', new ChunkOrder('response'), [H(200), H(100)]],
  ['request HEADERS in a response', new ChunkOrder('response'), [REQ]],
  ['response HEADERS in a request', new ChunkOrder('request'), [H(200)]],
  ['HEADERS after the request head', new ChunkOrder('request', true), [REQ]],
  ['a second TRAILERS', new ChunkOrder('response'), [H(200), T, T]],
  ['DATA after TRAILERS', new ChunkOrder('response'), [H(200), T, D]],
  ['DATA after END', new ChunkOrder('request', true), [END_CHUNK, D]],
  ['END after END', new ChunkOrder('request', true), [END_CHUNK, END_CHUNK]],
];

for (const [what, order, chunks] of broken) {
  test(`${what} throws ERR_PROTOCOL`, () => {
    try {
      feed(order, chunks);
      assert.unreachable('accepted');
    } catch (err) {
      assert.instance(err, ProtocolError);
      assert.is((err as ProtocolError).code, 'ERR_PROTOCOL');
    }
  });
}

test.run();
