import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ResetCode } from '../../src/codec/http-chunk.js';
import { publicErrorFor } from '../../src/edge/error-pages.js';
import * as errors from '../../src/errors.js';

const test = suite('edge/error-pages');

test('each failure has its status and code; transport and reset internals map to what happened', () => {
  const cases: Array<[unknown, number, string]> = [
    [new errors.BadRequestError('x'), 400, 'ERR_BAD_REQUEST'],
    [new errors.TunnelNotFoundError('x'), 404, 'ERR_TUNNEL_NOT_FOUND'],
    [new errors.AgentUnavailableError('x'), 502, 'ERR_AGENT_UNAVAILABLE'],
    [new errors.TransportClosedError('x'), 502, 'ERR_AGENT_UNAVAILABLE'],
    [new errors.ExchangeResetError('x', ResetCode.ORIGIN_ERROR), 502, 'ERR_ORIGIN_UNAVAILABLE'],
    [new errors.ExchangeResetError('x', ResetCode.PROTOCOL_ERROR), 502, 'ERR_AGENT_PROTOCOL'],
    [new errors.ExchangeResetError('x', ResetCode.CANCEL), 502, 'ERR_AGENT_UNAVAILABLE'],
    [new errors.ProtocolError('x'), 502, 'ERR_AGENT_PROTOCOL'],
    [new errors.FrameTooLargeError('x'), 502, 'ERR_AGENT_PROTOCOL'],
    [new errors.AgentBusyError('x'), 503, 'ERR_AGENT_BUSY'],
    [new errors.EdgeUnavailableError('x', 'draining'), 503, 'ERR_EDGE_UNAVAILABLE'],
    [new errors.TunnelLimitError('x', 'tunnel_rps'), 429, 'ERR_TUNNEL_LIMIT'],
    [new errors.ClientLimitError('x', 'ip_exchanges'), 429, 'ERR_CLIENT_LIMIT'],
    [new errors.HeadersTooLargeError('x', 'header_count'), 431, 'ERR_HEADERS_TOO_LARGE'],
    [new errors.AgentTimeoutError('x'), 504, 'ERR_AGENT_TIMEOUT'],
    [new errors.IdleTimeoutError('x'), 504, 'ERR_IDLE_TIMEOUT'],
    [new Error('EACCES /etc/secret'), 502, 'ERR_INTERNAL'],
    ['thrown string', 502, 'ERR_INTERNAL'],
  ];
  for (const [err, status, code] of cases) {
    const page = publicErrorFor(err);
    assert.equal([page.status, page.code], [status, code], String(err));
    assert.match(page.sentence, /^[A-Z].*\.$/);
  }
});

test.run();
