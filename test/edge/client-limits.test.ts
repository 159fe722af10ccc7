import { createServer } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { capConnections, MAX_PUBLIC_CONNECTIONS, PerAddressLimit } from '../../src/edge/client-limits.js';

const test = suite('edge/client-limits');

test('PerAddressLimit gives each address up to max slots; extra releases grant none', () => {
  const limit = new PerAddressLimit(2);
  assert.ok(limit.take('a'));
  assert.ok(limit.take('a'));
  assert.not.ok(limit.take('a'));
  assert.ok(limit.take('b'));
  limit.release('a');
  assert.ok(limit.take('a'));
  limit.release('a');
  limit.release('a');
  limit.release('a');
  assert.ok(limit.take('a') && limit.take('a'));
  assert.not.ok(limit.take('a'));
});

test('capConnections sets server.maxConnections to a named bound', () => {
  // Guards against the public listener accepting connections without any global bound.
  const server = createServer();
  capConnections(server, new PerAddressLimit(1), { exempt: () => false, onRefused: () => undefined });
  assert.is(server.maxConnections, MAX_PUBLIC_CONNECTIONS);
});

test.run();
