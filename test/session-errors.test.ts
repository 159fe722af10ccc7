import * as assert from 'uvu/assert';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  AgentUnavailableError,
  BadHelloError,
  EdgeUnavailableError,
  NameNotAllowedError,
  NameTakenError,
  ProtocolError,
  UnauthorizedError,
  type JettyError,
} from '../src/errors.js';
import {
  SESSION_ERRORS,
  WS_CLOSE_GOING_AWAY,
  WS_CLOSE_INTERNAL_ERROR,
  errorForGrpcStatus,
  errorForWsClose,
  grpcStatusFor,
  wsCloseCodeFor,
} from '../src/session-errors.js';
import { suite } from './helpers/suite.js';

const test = suite('session-errors');

/** What the edge refuses with, and the code the agent reads back (a bad Hello is the user's usage error). */
const refusals: Array<[JettyError, string]> = [
  [new UnauthorizedError('no token'), 'ERR_UNAUTHORIZED'],
  [new NameNotAllowedError('not yours'), 'ERR_NAME_NOT_ALLOWED'],
  [new NameTakenError('in use'), 'ERR_NAME_TAKEN'],
  [new EdgeUnavailableError('draining', 'draining'), 'ERR_EDGE_UNAVAILABLE'],
  [new BadHelloError('invalid tunnel name'), 'ERR_USAGE'],
  [new ProtocolError('second Hello'), 'ERR_PROTOCOL'],
];

for (const [err, agentCode] of refusals) {
  test(`${err.code} round-trips over gRPC and WebSocket to ${agentCode}`, () => {
    const overGrpc = errorForGrpcStatus(grpcStatusFor(err)!, err.message);
    const overWs = errorForWsClose(wsCloseCodeFor(err), err.message);
    assert.is(overGrpc?.code, agentCode);
    assert.is(overWs?.code, agentCode);
    assert.is(overGrpc?.message, err.message);
  });
}

test('no gRPC status or close code appears twice, so the table reads both ways', () => {
  assert.is(new Set(SESSION_ERRORS.map((r) => r.grpcStatus)).size, SESSION_ERRORS.length);
  assert.is(new Set(SESSION_ERRORS.map((r) => r.wsCloseCode)).size, SESSION_ERRORS.length);
  assert.is(new Set(SESSION_ERRORS.map((r) => r.code)).size, SESSION_ERRORS.length);
});

test('a session that ends for a known reason outside the table ends cleanly (gRPC OK, close 1001)', () => {
  const err = new AgentUnavailableError('agent silent');
  assert.is(grpcStatusFor(err), undefined);
  assert.is(wsCloseCodeFor(err), WS_CLOSE_GOING_AWAY);
});

test('a thrown bug ends the session as an internal error (gRPC INTERNAL, close 1011)', () => {
  const err = new TypeError('x is undefined');
  assert.is(grpcStatusFor(err), GrpcStatus.INTERNAL);
  assert.is(wsCloseCodeFor(err), WS_CLOSE_INTERNAL_ERROR);
});

test('statuses and close codes outside the table map to nothing (the caller decides)', () => {
  assert.is(errorForGrpcStatus(GrpcStatus.INTERNAL, 'x'), undefined);
  assert.is(errorForWsClose(1000, 'x'), undefined);
});

test.run();
