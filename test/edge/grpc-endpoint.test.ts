import { once } from 'node:events';
import { connect } from 'node:http2';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { GRPC_STREAM_WINDOW_BYTES } from '../../src/streams/grpc-service.js';
import { startEdge, waitFor } from '../helpers/harness.js';

const test = suite('edge/grpc-endpoint');

// Regression guard: grpc-js's server has no window option, so the edge raises each HTTP/2 session's
// window itself through grpc-js internals. If an upgrade breaks that, agents fall back to 64 KiB
// windows (≈1 MB/s at 40 ms RTT) without any error; this test makes it loud.
test('the edge advertises the raised HTTP/2 stream window to agents, not 64 KiB', async () => {
  const edge = await startEdge();
  const session = connect(`http://127.0.0.1:${edge.grpcPort}`);
  try {
    await once(session, 'remoteSettings');
    await waitFor(() => session.remoteSettings.initialWindowSize === GRPC_STREAM_WINDOW_BYTES, 2000, 'raised window');
    assert.ok(GRPC_STREAM_WINDOW_BYTES > 65_535);
    assert.ok((session.remoteSettings.maxConcurrentStreams ?? 0) < 100_000, 'a real concurrent-stream limit');
  } finally {
    session.destroy();
    await edge.close();
  }
});

test.run();
