import * as assert from 'uvu/assert';
import { suite } from '../helpers/suite.js';
import { formatPortRanges, inPortRanges, parsePortRanges, portsOf } from '../../src/edge/port-ranges.js';
import { parseTokenEntries, TokenAuthority } from '../../src/edge/tokens.js';

const test = suite('edge/port-ranges');

test('ranges and single ports, as text or a YAML list; empty = none', () => {
  assert.equal(parsePortRanges('20000-20002, 20100'), [{ from: 20000, to: 20002 }, { from: 20100, to: 20100 }]);
  assert.equal(parsePortRanges(['5432', 6379]), [{ from: 5432, to: 5432 }, { from: 6379, to: 6379 }]);
  assert.equal(parsePortRanges(''), []);
  assert.is(formatPortRanges(parsePortRanges('20000-20002,20100')), '20000-20002,20100');
  assert.equal([...portsOf(parsePortRanges('5-6,6-7'))], [5, 6, 7]);
  assert.ok(inPortRanges(20001, parsePortRanges('20000-20002')));
  assert.not.ok(inPortRanges(20003, parsePortRanges('20000-20002')));
});

test('bad ranges are refused with a message naming them', () => {
  for (const bad of ['0', '70000', '20010-20000', 'abc', '1-2-3']) assert.throws(() => parsePortRanges(bad), new RegExp(bad));
});

test('a token scoped to ports claims those ports only, and a ports-only token no HTTP name', () => {
  const [entry] = parseTokenEntries([{ hash: `sha256:${'a'.repeat(64)}`, ports: ['20000-20010'] }]);
  assert.ok(TokenAuthority.mayClaim(entry, 'tcp:20005'));
  assert.not.ok(TokenAuthority.mayClaim(entry, 'tcp:20011'));
  assert.not.ok(TokenAuthority.mayClaim(entry, 'web'));
  const [named] = parseTokenEntries([{ hash: `sha256:${'a'.repeat(64)}`, names: ['*'] }]);
  assert.ok(TokenAuthority.mayClaim(named, 'tcp:1234'), 'a token without ports may claim any port the edge serves');
  assert.throws(() => parseTokenEntries([{ hash: `sha256:${'a'.repeat(64)}`, ports: [] }]), /ports must list/);
  assert.throws(() => parseTokenEntries([{ hash: `sha256:${'a'.repeat(64)}`, ports: ['0-5'] }]), /entry 0: bad port range/);
});

test.run();
