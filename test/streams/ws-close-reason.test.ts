import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { MAX_WS_CLOSE_REASON_BYTES, wsCloseReason } from '../../src/streams/ws-close-reason.js';

const test = suite('streams/ws-close-reason');
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

test('a reason that fits is kept as is, up to exactly 123 bytes', () => {
  assert.is(MAX_WS_CLOSE_REASON_BYTES, 123);
  assert.is(wsCloseReason('protocol error'), 'protocol error');
  const exact = 'x'.repeat(123);
  assert.is(wsCloseReason(exact), exact);
  // 41 three-byte characters are exactly 123 bytes.
  const euros = '€'.repeat(41);
  assert.is(bytes(euros), 123);
  assert.is(wsCloseReason(euros), euros);
});

test('a longer ASCII reason is cut to 123 bytes', () => {
  assert.is(wsCloseReason('y'.repeat(124)), 'y'.repeat(123));
});

// Guards against the pre-auth crash: a cut by characters left 240 bytes of "é", and ws threw.
test('multi-byte characters are never split: the cut falls before the character that does not fit', () => {
  const cut = wsCloseReason('é'.repeat(100));
  assert.is(cut, 'é'.repeat(61));
  assert.is(bytes(cut), 122);
  assert.is(wsCloseReason(`a${'€'.repeat(41)}`), `a${'€'.repeat(40)}`);
  const emoji = wsCloseReason('😀'.repeat(40));
  assert.is(emoji, '😀'.repeat(30));
  assert.ok(!emoji.includes('\ufffd'));
});

test('any string cuts to valid UTF-8 within the limit', () => {
  for (const s of ['\ud800'.repeat(60), `x${'é'.repeat(200)}`, 'ab😀'.repeat(50), '']) {
    const cut = wsCloseReason(s);
    assert.ok(bytes(cut) <= MAX_WS_CLOSE_REASON_BYTES, `${bytes(cut)} bytes`);
    assert.is(Buffer.from(cut, 'utf8').toString('utf8'), cut);
  }
});

test('a smaller limit can be asked for', () => {
  assert.is(wsCloseReason('ééé', 5), 'éé');
});

test.run();
