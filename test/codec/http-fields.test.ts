import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { endToEndFields, flatFields } from '../../src/codec/http-fields.js';

const test = suite('codec/http-fields');

test('hop-by-hop fields and those named in Connection are dropped, order and repeats kept', () => {
  const raw = [
    'Host', 'a', 'Connection', 'keep-alive, X-Private', 'Keep-Alive', 'timeout=5', 'X-Private', 'secret',
    'Set-Cookie', '1', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Set-Cookie', '2',
    'Proxy-Authorization', 'x', 'Trailer', 'X-Sum',
  ];
  assert.equal(flatFields(endToEndFields(raw)), ['Host', 'a', 'Set-Cookie', '1', 'Set-Cookie', '2', 'Trailer', 'X-Sum']);
});

test('extra names can be dropped', () => {
  assert.equal(flatFields(endToEndFields(['X-Forwarded-For', '1.2.3.4', 'A', 'b'], new Set(['x-forwarded-for']))), ['A', 'b']);
});

test.run();
