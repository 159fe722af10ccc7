import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { declaredLength, endToEndFields, flatFields, framedFields, pairFields, trailerFields, upgradeProtocol } from '../../src/codec/http-fields.js';

const test = suite('codec/http-fields');

test('upgradeProtocol needs both Connection: upgrade (a token in a list, any case) and a non-empty Upgrade', () => {
  const f = (...pairs: string[]) => pairFields(pairs);
  assert.is(upgradeProtocol(f('Connection', 'keep-alive, Upgrade', 'Upgrade', 'websocket')), 'websocket');
  assert.is(upgradeProtocol(f('upgrade', 'h2c', 'connection', 'UPGRADE')), 'h2c');
  assert.is(upgradeProtocol(f('Upgrade', 'websocket')), undefined);
  assert.is(upgradeProtocol(f('Connection', 'upgrade')), undefined);
  assert.is(upgradeProtocol(f('Connection', 'upgrade', 'Upgrade', ' ')), undefined);
  assert.is(upgradeProtocol(f('Connection', 'upgraded', 'Upgrade', 'websocket')), undefined);
});

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

const fields = (...flat: string[]) => pairFields(flat);

test('declaredLength accepts one decimal length, repeated or listed alike; anything else is ERR_PROTOCOL', () => {
  assert.is(declaredLength(fields('A', 'b')), undefined);
  assert.is(declaredLength(fields('Content-Length', '42')), 42);
  assert.is(declaredLength(fields('content-length', '42', 'Content-Length', '42, 42')), 42);
  for (const bad of [['1', '2'], ['1, 2'], ['x'], ['-1'], ['+1'], ['1e3'], [''], ['1 2'], ['1234567890123456']]) {
    const list = fields(...bad.flatMap((v) => ['Content-Length', v]));
    assert.throws(() => declaredLength(list), (e: { code: string }) => e.code === 'ERR_PROTOCOL', JSON.stringify(bad));
  }
});

test('framedFields drops Transfer-Encoding and hop-by-hop fields and keeps one Content-Length where it stood', () => {
  const framed = framedFields(fields('A', '1', 'Content-Length', '5', 'Transfer-Encoding', 'chunked', 'content-length', '5', 'B', '2'));
  assert.is(framed.length, 5);
  assert.equal(flatFields(framed.headers), ['A', '1', 'Content-Length', '5', 'B', '2']);
  assert.equal(framedFields(fields('Transfer-Encoding', 'chunked')), { headers: [], length: undefined });
});

test('trailerFields drops framing, routing and Connection-named fields; grpc-status passes', () => {
  const t = trailerFields(fields('grpc-status', '0', 'Content-Length', '9', 'Host', 'x', 'Connection', 'x-a', 'x-a', '1', 'Trailer', 'y'));
  assert.equal(flatFields(t), ['grpc-status', '0']);
});

test.run();
