import * as assert from 'uvu/assert';
import { ResetCode } from '../../src/codec/http-chunk.js';
import { ExchangeResetError } from '../../src/errors.js';
import { agentFailureCode } from '../../src/edge/peer-endpoint.js';
import { suite } from '../helpers/suite.js';

/**
 * What the owner edge tells the forwarder when the agent's side of a forwarded exchange fails. The
 * edge-to-edge codes make the forwarder send the request again elsewhere, so an agent must not be able
 * to trigger them: a hostile agent in a pool spread over several edges would get requests delivered twice.
 */
const test = suite('edge/peer-endpoint-codes');

test("an agent's MISDIRECTED or UNAVAILABLE reset goes back as its protocol error, never as a code the forwarder retries on", () => {
  for (const code of [ResetCode.MISDIRECTED, ResetCode.UNAVAILABLE]) {
    assert.is(agentFailureCode(new ExchangeResetError('agent reset', code)), ResetCode.PROTOCOL_ERROR);
  }
});

test("an agent's ordinary resets pass unchanged", () => {
  for (const code of [ResetCode.CANCEL, ResetCode.ORIGIN_ERROR, ResetCode.PROTOCOL_ERROR, ResetCode.INTERNAL]) {
    assert.is(agentFailureCode(new ExchangeResetError('agent reset', code)), code);
  }
  assert.is(agentFailureCode(new Error('anything else')), ResetCode.INTERNAL);
});

test.run();
