import * as assert from 'uvu/assert';
import { OriginTarget, parseHostHeader } from '../../src/agent/origin-target.js';
import { suite } from '../helpers/suite.js';

const test = suite('agent/origin-target');

const fields = [
  { name: 'Host', value: 'demo.localhost:8080' },
  { name: 'X-A', value: '1' },
];

test('parseHostHeader takes the two keywords and host[:port] literals, and refuses anything else', () => {
  for (const ok of ['preserve', 'rewrite', 'api.internal', 'api.internal:8443', '127.0.0.1:80', '[::1]:3000', 'localhost.']) {
    assert.is(parseHostHeader(ok), ok);
  }
  for (const bad of ['', 'a b', 'x/y', 'host:99999', 'host:', '-bad.example', 'a\r\nb', `${'a'.repeat(64)}.example`]) {
    assert.throws(() => parseHostHeader(bad), undefined, bad);
  }
});

test('preserve keeps the exchange Host; rewrite sends the origin host:port; a literal replaces it once', () => {
  const origin = new URL('https://localhost:3443');
  assert.equal(new OriginTarget(origin, 'preserve').fields(fields), fields);
  assert.is(new OriginTarget(origin, 'preserve').authority(fields), 'demo.localhost:8080');
  assert.equal(new OriginTarget(origin, 'rewrite').fields(fields)[0], { name: 'Host', value: 'localhost:3443' });
  assert.is(new OriginTarget(new URL('h2c://127.0.0.1'), 'rewrite').authority(fields), '127.0.0.1:80');
  const twice = [...fields, { name: 'host', value: 'smuggled' }];
  assert.equal(new OriginTarget(origin, 'api.internal').fields(twice), [{ name: 'Host', value: 'api.internal' }, fields[1]]);
});

test('a base path prefixes every origin-form target; no base path leaves targets alone', () => {
  assert.is(new OriginTarget(new URL('http://h:1/docs/')).path('/a?b=1'), '/docs/a?b=1');
  assert.is(new OriginTarget(new URL('http://h:1/docs')).path('/'), '/docs/');
  assert.is(new OriginTarget(new URL('http://h:1/')).path('/a'), '/a');
  assert.is(new OriginTarget(new URL('http://h:1/docs')).path('*'), '*');
});

test.run();
