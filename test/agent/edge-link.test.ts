import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { certificateError, checkEdgeLink } from '../../src/agent/edge-link.js';

const test = suite('agent/edge-link');

const refusal = (link: Parameters<typeof checkEdgeLink>[0]): string => {
  try {
    checkEdgeLink(link);
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

test('a token goes in cleartext only to a loopback edge, or with insecure; https is always fine', () => {
  for (const edge of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080', 'http://demo.localhost', 'https://tunnels.example.com']) {
    assert.is(refusal({ edge: new URL(edge), token: 't' }), 'ok', edge);
  }
  for (const edge of ['http://192.0.2.1:8080', 'http://tunnels.example.com', 'http://[2001:db8::1]:8080', 'http://127.0.0.1.example.com']) {
    assert.is(refusal({ edge: new URL(edge), token: 't' }), 'ERR_USAGE', edge);
    assert.is(refusal({ edge: new URL(edge), token: 't', insecure: true }), 'ok', edge);
    assert.is(refusal({ edge: new URL(edge) }), 'ok', `${edge} without a token`);
  }
  assert.is(refusal({ edge: new URL('http://127.0.0.1:8080'), edgeCa: Buffer.from('pem') }), 'ERR_USAGE');
});

test('certificate failures are told apart from other failures, through causes and grpc-js details', () => {
  const tlsErr = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  assert.is(certificateError(new Error('wrapped', { cause: tlsErr }), 'x')?.code, 'ERR_EDGE_CERTIFICATE');
  const grpcErr = Object.assign(new Error('14 UNAVAILABLE'), { code: 14, details: 'No connection established. Last error: Error: unable to verify the first certificate. Resolution note: ' });
  const mapped = certificateError(grpcErr, 'x');
  assert.match(mapped?.message ?? '', /: unable to verify the first certificate \(a private CA/);
  assert.is(certificateError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x'), undefined);
});

test.run();
