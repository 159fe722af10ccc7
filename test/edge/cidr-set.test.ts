import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { CidrSet, parseCidrList } from '../../src/edge/cidr-set.js';

const test = suite('edge/cidr-set');

test('IPv4 and IPv6 CIDR blocks and single addresses match what they cover, nothing else', () => {
  const set = new CidrSet(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '2001:db8::1']);
  for (const a of ['10.1.2.3', '10.255.255.255', '192.168.1.7', 'fd12:3456::1', '2001:db8::1']) assert.ok(set.has(a), a);
  for (const a of ['11.0.0.1', '192.168.1.8', 'fe80::1', '2001:db8::2', '', 'not-an-ip']) assert.not.ok(set.has(a), a);
});

test('an IPv4-mapped peer (::ffff:1.2.3.4, from a dual-stack socket) matches the IPv4 entries', () => {
  const set = new CidrSet(['127.0.0.1', '10.0.0.0/8']);
  assert.ok(set.has('::ffff:127.0.0.1'));
  assert.ok(set.has('::FFFF:10.9.8.7'));
  assert.not.ok(set.has('::ffff:11.0.0.1'));
  // The mapped form of a block is the IPv4 block.
  assert.ok(new CidrSet(['::ffff:10.0.0.0/104']).has('10.200.0.1'));
});

test('bad entries are refused naming the entry; a comma list and a YAML list both parse', () => {
  for (const bad of ['10.0.0.0/33', 'fd00::/129', 'example.com', '10.0.0.0/', '10.0.0.0/8/1', '1.2.3']) {
    assert.throws(() => parseCidrList(bad), (err: Error) => err.message.includes(bad), bad);
  }
  assert.equal(parseCidrList('10.0.0.0/8, ::1'), ['10.0.0.0/8', '::1']);
  assert.equal(parseCidrList(['10.0.0.0/8', '::1']), ['10.0.0.0/8', '::1']);
});

test.run();
