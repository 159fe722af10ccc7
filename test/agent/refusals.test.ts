import * as assert from 'uvu/assert';
import { REFUSALS, refusalError } from '../../src/agent/refusals.js';
import { suite } from '../helpers/suite.js';

const test = suite('agent/refusals');

test('every row maps its gRPC status and its close code to the same error class, keeping the reason', () => {
  for (const row of REFUSALS) {
    const viaGrpc = refusalError('grpcStatus', row.grpcStatus, 'why');
    const viaWs = refusalError('wsCloseCode', row.wsCloseCode, 'why');
    assert.instance(viaGrpc, row.error);
    assert.instance(viaWs, row.error);
    assert.ok(viaGrpc!.message.endsWith('why'));
  }
});

test('codes are unique per transport, and a code that refuses nothing maps to no error', () => {
  assert.is(new Set(REFUSALS.map((r) => r.grpcStatus)).size, REFUSALS.length);
  assert.is(new Set(REFUSALS.map((r) => r.wsCloseCode)).size, REFUSALS.length);
  assert.is(refusalError('grpcStatus', 14, 'unavailable'), undefined);
  assert.is(refusalError('wsCloseCode', 1006, 'gone'), undefined);
});

test.run();
