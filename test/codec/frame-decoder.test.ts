import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { encodeFrame, FrameDecoder, FRAME_HEADER_BYTES } from '../../src/codec/frame-decoder.js';

const test = suite('codec/frame-decoder');
const SEED = 20261126;

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(bytes.subarray(prev, p));
    prev = p;
  }
  parts.push(bytes.subarray(prev));
  return parts;
}

test('any split of the encoded bytes decodes to the same frames', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (payloads, cuts) => {
        const all = Buffer.concat(payloads.map(encodeFrame));
        const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
        const out: Uint8Array[] = [];
        for (const part of splitAt(all, cuts)) out.push(...decoder.write(part));
        decoder.end();
        assert.equal(out.map((b) => Buffer.from(b)), payloads.map((b) => Buffer.from(b)));
        assert.is(decoder.bufferedBytes, 0);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('an oversize frame fails after the frames before it are delivered', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (payloads, cuts) => {
      const big = encodeFrame(new Uint8Array(129));
      const all = Buffer.concat([...payloads.map(encodeFrame), big]);
      const decoder = new FrameDecoder({ maxFrameBytes: 128 });
      const out: Uint8Array[] = [];
      let error: { code?: string } | undefined;
      for (const part of splitAt(all, cuts)) {
        try {
          out.push(...decoder.write(part));
        } catch (err) {
          error = err as { code?: string };
          break;
        }
      }
      if (!error) {
        try {
          decoder.end();
        } catch (err) {
          error = err as { code?: string };
        }
      }
      assert.is(error?.code, 'ERR_FRAME_TOO_LARGE');
      assert.equal(out.map((b) => Buffer.from(b)), payloads.map((b) => Buffer.from(b)));
      assert.ok(decoder.bufferedBytes <= 128 + FRAME_HEADER_BYTES);
    }),
    { seed: SEED, numRuns: 200 },
  );
});

test('a stream cut inside a frame is an error at end(), not before', () => {
  const decoder = new FrameDecoder();
  const frame = encodeFrame(new Uint8Array([1, 2, 3]));
  assert.equal(decoder.write(frame.subarray(0, 5)), []);
  assert.throws(() => decoder.end(), (err: { code: string }) => err.code === 'ERR_PROTOCOL');
});

test.run();
