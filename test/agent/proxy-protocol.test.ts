import * as assert from 'uvu/assert';
import { suite } from '../helpers/suite.js';
import { peersOf, proxyV1, proxyV2, PROXY_V2_SIGNATURE } from '../../src/agent/proxy-protocol.js';

const test = suite('agent/proxy-protocol');

const headers = (client: string, cport: string, server: string, sport: string) => [
  { name: 'Jetty-Client-Address', value: client },
  { name: 'Jetty-Client-Port', value: cport },
  { name: 'Jetty-Server-Address', value: server },
  { name: 'Jetty-Server-Port', value: sport },
];

test('v1: TCP4 for IPv4 (also IPv4-mapped IPv6), TCP6 for IPv6', () => {
  assert.is(proxyV1(peersOf(headers('::ffff:10.0.0.1', '5000', '10.0.0.2', '20000'))).toString(), 'PROXY TCP4 10.0.0.1 10.0.0.2 5000 20000\r\n');
  assert.is(proxyV1(peersOf(headers('2001:db8::1', '5000', '::1', '20000'))).toString(), 'PROXY TCP6 2001:db8::1 ::1 5000 20000\r\n');
});

test('v2: signature, version/command, family and addresses in network order', () => {
  const v4 = proxyV2(peersOf(headers('10.0.0.1', '5000', '10.0.0.2', '20000')), 'stream');
  assert.ok(v4.subarray(0, 12).equals(PROXY_V2_SIGNATURE));
  assert.equal([v4[12], v4[13], v4.readUInt16BE(14)], [0x21, 0x11, 12]);
  assert.equal([...v4.subarray(16, 24)], [10, 0, 0, 1, 10, 0, 0, 2]);
  assert.equal([v4.readUInt16BE(24), v4.readUInt16BE(26)], [5000, 20000]);
  const v6 = proxyV2(peersOf(headers('2001:db8::1', '1', '::1', '2')), 'dgram');
  assert.equal([v6[13], v6.readUInt16BE(14)], [0x22, 36]);
  assert.is(v6.subarray(16, 32).toString('hex'), '20010db8000000000000000000000001');
  assert.is(v6.subarray(32, 48).toString('hex'), '00000000000000000000000000000001');
});

test('open HEADERS whose addresses are not IPs or whose ports are not ports are refused (ERR_PROTOCOL)', () => {
  for (const bad of [headers('evil\r\nhost', '1', '::1', '2'), headers('10.0.0.1', '70000', '::1', '2'), headers('10.0.0.1', '1', '::1', ''), []]) {
    assert.throws(() => peersOf(bad), (e: Error) => (e as { code?: string }).code === 'ERR_PROTOCOL');
  }
});

test.run();
