import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import {
  batchedSize,
  DATAGRAM_BATCH_BYTES,
  DATAGRAM_BATCH_FIELD,
  decodeBatch,
  encodeBatch,
  MAX_DATAGRAM_BYTES,
  offersBatching,
} from '../../src/codec/datagram-batch.js';
import { MAX_CHUNK_DATA_BYTES } from '../../src/codec/tunnel-codec.js';
import { ProtocolError } from '../../src/errors.js';
import { DatagramQueue } from '../../src/streams/datagram-queue.js';

const test = suite('codec/datagram-batch');
const SEED = 20261127;

const datagram = fc.uint8Array({ minLength: 0, maxLength: 2048 });

test('every list of datagrams survives encode → decode, boundaries and bytes kept', () => {
  fc.assert(
    fc.property(fc.array(datagram, { minLength: 1, maxLength: 40 }), (datagrams) => {
      const decoded = decodeBatch(encodeBatch(datagrams));
      assert.equal(decoded.map((d) => Buffer.from(d).toString('hex')), datagrams.map((d) => Buffer.from(d).toString('hex')));
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('the largest datagram round-trips alone and within one DATA chunk', () => {
  const big = Buffer.alloc(MAX_DATAGRAM_BYTES, 7);
  const batch = encodeBatch([big]);
  assert.ok(batch.byteLength <= MAX_CHUNK_DATA_BYTES);
  assert.equal(decodeBatch(batch), [big]);
  assert.throws(() => encodeBatch([Buffer.alloc(MAX_DATAGRAM_BYTES + 1)]), /more than/);
  assert.throws(() => encodeBatch([]), /at least one/);
});

/** A valid batch cut, extended or with one length rewritten: every such mutation that is not itself a valid framing is refused. */
test('every malformed batch is refused with ProtocolError', () => {
  const refused = (bytes: Uint8Array): boolean => {
    try {
      decodeBatch(bytes);
      return false;
    } catch (err) {
      assert.instance(err, ProtocolError);
      return true;
    }
  };
  assert.ok(refused(Buffer.alloc(0)), 'empty DATA');
  assert.ok(refused(Buffer.from([0])), 'one byte: half a length prefix');
  assert.ok(refused(Buffer.from([0xff, 0xe4])), 'length 65,508 with nothing after');
  const over = Buffer.alloc(2 + MAX_DATAGRAM_BYTES + 1);
  over.writeUInt16BE(MAX_DATAGRAM_BYTES + 1, 0);
  assert.ok(refused(over), 'a length above 65,507 even when the bytes are there');
  fc.assert(
    fc.property(fc.array(datagram, { minLength: 1, maxLength: 10 }), fc.nat(), fc.integer({ min: 1, max: 3 }), (datagrams, at, cut) => {
      const batch = encodeBatch(datagrams);
      // Truncated anywhere but at an entry boundary: the last length runs past the chunk or is cut.
      const boundaries = new Set<number>();
      let off = 0;
      for (const d of datagrams) boundaries.add((off += batchedSize(d)));
      const end = batch.byteLength - Math.min(cut, batch.byteLength);
      if (!boundaries.has(end) && end > 0) assert.ok(refused(batch.subarray(0, end)), `cut at ${end}`);
      // A trailing byte too few for a length prefix.
      assert.ok(refused(Buffer.concat([batch, Buffer.from([at & 0xff])])), 'one trailing byte');
      // The first length claims more than the chunk has left.
      const lie = Buffer.from(batch);
      lie.writeUInt16BE(Math.min(MAX_DATAGRAM_BYTES, batch.byteLength - 2 + 1 + (at % 100)), 0);
      assert.ok(refused(lie), 'a length past the end');
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('the offer is recognised case-insensitively, only with version 1', () => {
  assert.ok(offersBatching([{ name: DATAGRAM_BATCH_FIELD.toLowerCase(), value: '1' }]));
  assert.not.ok(offersBatching([{ name: DATAGRAM_BATCH_FIELD, value: '2' }]));
  assert.not.ok(offersBatching([]));
  assert.not.ok(offersBatching(undefined));
});

test('takeBatch takes only what is queued, within the byte bound, and a lone datagram at once', async () => {
  const q = new DatagramQueue(256);
  const waiting = q.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize);
  q.push(Buffer.alloc(10));
  q.push(Buffer.alloc(10));
  // The consumer was already waiting: it wakes with what was there when it ran, never waiting to fill.
  const first = await waiting;
  assert.ok(first && first.length >= 1 && first.length <= 2);
  while (q.length) await q.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize);
  for (let i = 0; i < 100; i++) q.push(Buffer.alloc(1000));
  const batch = await q.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize);
  assert.is(batch!.length, Math.floor(DATAGRAM_BATCH_BYTES / 1002));
  assert.ok(batch!.reduce((n, d) => n + batchedSize(d), 0) <= DATAGRAM_BATCH_BYTES);
  assert.is((await q.takeBatch(0, batchedSize))!.length, 1, 'bound 0: one datagram per DATA, as without batching');
  // A datagram larger than the bound still goes, alone.
  const q2 = new DatagramQueue(4);
  q2.push(Buffer.alloc(MAX_DATAGRAM_BYTES));
  q2.push(Buffer.alloc(100));
  assert.is((await q2.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize))!.length, 1);
  q2.close();
  assert.is((await q2.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize))!.length, 1, 'what was queued is still taken after close');
  assert.is(await q2.takeBatch(DATAGRAM_BATCH_BYTES, batchedSize), undefined);
});

test.run();
