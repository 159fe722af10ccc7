import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { normaliseHost, originFormTarget, tunnelName } from '../../src/edge/request-head.js';

const test = suite('edge/request-head');

test('Host is lower-cased, port and one trailing dot removed', () => {
  assert.is(normaliseHost('Demo.LocalHost:8080'), 'demo.localhost');
  assert.is(normaliseHost('demo.localhost.'), 'demo.localhost');
  assert.is(normaliseHost('[::1]:8080'), '[::1]');
});

test('only NAME.DOMAIN selects a tunnel; the domain, IPs and deeper names are the edge own', () => {
  assert.is(tunnelName('Demo.localhost:8080', 'localhost'), 'demo');
  assert.is(tunnelName('demo.localhost.', 'localhost'), 'demo');
  assert.is(tunnelName('localhost:8080', 'localhost'), undefined);
  assert.is(tunnelName('127.0.0.1:8080', 'localhost'), undefined);
  assert.is(tunnelName('a.b.localhost', 'localhost'), undefined);
  assert.is(tunnelName('demo.example.com', 'example.com'), 'demo');
});

test('absolute-form targets must match Host and are reduced to origin form', () => {
  assert.is(originFormTarget('/a?b', 'x'), '/a?b');
  assert.is(originFormTarget('http://demo.localhost:8080/a?b=1', 'demo.localhost:8080'), '/a?b=1');
  assert.throws(() => originFormTarget('http://other/a', 'demo.localhost'), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST');
  assert.throws(() => originFormTarget('demo.localhost:443', 'demo.localhost'), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST');
});

test.run();
