import { once } from 'node:events';
import { connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import type { AgentMessage, EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { GRPC_COMMON_OPTIONS, GRPC_STREAM_WINDOW_BYTES, TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';
import { startEdge, waitFor, within } from '../helpers/harness.js';

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

// An invalid Hello name was quoted into the status details: peer text sent back as a header, and a
// name of 100 KB made that header too large to send, so the call never ended.
test('an invalid Hello name is refused with INVALID_ARGUMENT at once, without quoting it', async () => {
  const edge = await startEdge();
  const Client = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
  const client = new Client(`127.0.0.1:${edge.grpcPort}`, grpc.credentials.createInsecure(), GRPC_COMMON_OPTIONS) as unknown as grpc.Client & {
    register(md?: grpc.Metadata): grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
  };
  try {
    for (const name of ['<b>x</b>', 'é'.repeat(50_000)]) {
      const call = client.register(new grpc.Metadata());
      call.on('error', () => undefined);
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.write({ hello: { name, version: 'test' } });
      const { code, details } = await within(status, 5000, 'the refusal');
      assert.is(code, grpc.status.INVALID_ARGUMENT);
      assert.not.match(details, /<b>|é/);
    }
  } finally {
    client.close();
    await edge.close();
  }
});

test.run();
