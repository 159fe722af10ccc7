import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as assert from 'uvu/assert';
import { AbortError } from '../../src/errors.js';
import { abortable } from '../../src/streams/abortable.js';
import { suite } from '../helpers/suite.js';

const test = suite('streams/abortable');

// A real collection, to see what the generator keeps alive while its exchange is still open.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CHUNKS = 32;

test('chunks already passed on are not kept alive while the exchange lasts (a 1 GiB upload once held 1 GiB)', async () => {
  const refs: WeakRef<object>[] = [];
  async function* source(): AsyncGenerator<object> {
    for (let i = 0; i < CHUNKS; i++) {
      const chunk = { data: Buffer.alloc(64 * 1024) };
      refs.push(new WeakRef(chunk));
      yield chunk;
    }
    // The upload goes on (the exchange is open): what passed must be collectable by now.
    await new Promise<void>((resolve) => setImmediate(resolve));
    yield { data: Buffer.alloc(0) };
  }
  const signal = new AbortController().signal;
  let seen = 0;
  for await (const chunk of abortable(source(), signal)) {
    seen++;
    if (seen === CHUNKS + 1) {
      // Let the finished reads' promise jobs run out, then collect.
      await new Promise<void>((resolve) => setImmediate(resolve));
      gc();
      const alive = refs.filter((r) => r.deref() !== undefined).length;
      assert.ok(alive <= 1, `${alive} of ${CHUNKS} earlier chunks still reachable`);
    }
    void chunk;
  }
  assert.is(seen, CHUNKS + 1);
});

test('an abort ends a pending read at once with the reason', async () => {
  const controller = new AbortController();
  const never: AsyncIterable<number> = { [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<number>>(() => undefined) }) };
  const reading = abortable(never, controller.signal).next();
  controller.abort(new AbortError('client went away'));
  try {
    await reading;
    assert.unreachable('the read should fail');
  } catch (err) {
    assert.instance(err, AbortError);
    assert.is((err as Error).message, 'client went away');
  }
});

test('a signal aborted before the first read ends it before the source is asked', async () => {
  let asked = 0;
  const source: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({ next: () => (asked++, Promise.resolve({ done: false, value: 1 })) }),
  };
  const controller = new AbortController();
  controller.abort(new AbortError('gone'));
  try {
    await abortable(source, controller.signal).next();
    assert.unreachable('the read should fail');
  } catch (err) {
    assert.is((err as Error).message, 'gone');
  }
  assert.is(asked, 0);
});

test.run();
