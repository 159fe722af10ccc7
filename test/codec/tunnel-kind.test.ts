import * as assert from 'uvu/assert';
import { suite } from '../helpers/suite.js';
import { decodeAgentMessage, decodeEdgeMessage, encodeAgentMessage, encodeEdgeMessage, MAX_CHUNK_DATA_BYTES, TunnelKind } from '../../src/codec/tunnel-codec.js';
import { WS_CODECS, WS_PROTOCOL_JSON } from '../../src/codec/ws-frame.js';
import { MAX_DATAGRAM_BYTES } from '../../src/edge/udp-listener.js';
import { MIN_WS_WINDOW_BYTES } from '../../src/streams/ws-mux.js';

const test = suite('codec/tunnel-kind');

const hello = { name: 'db', version: '1', resume: '', resumeSecret: '', tunnelKind: TunnelKind.TCP, remotePort: 20005 };
const registered = { name: 'db', url: 'tcp://example.com:20005', sessionId: 's1', port: 20005 };

test('Hello.tunnel_kind and remote_port, Registered.port survive protobuf and both WebSocket codecs', () => {
  const a = decodeAgentMessage(encodeAgentMessage({ hello }));
  assert.is(a.hello?.tunnelKind, TunnelKind.TCP);
  assert.is(a.hello?.remotePort, 20005);
  assert.is(decodeEdgeMessage(encodeEdgeMessage({ registered })).registered?.port, 20005);
  for (const codec of Object.values(WS_CODECS)) {
    const frame = codec.decode(Buffer.from(codec.encode({ stream: 0, agent: { hello } })), codec.binary) as { agent: { hello: typeof hello } };
    assert.is(frame.agent.hello.tunnelKind, TunnelKind.TCP, codec.name);
    assert.is(frame.agent.hello.remotePort, 20005, codec.name);
    const back = codec.decode(Buffer.from(codec.encode({ stream: 0, edge: { registered } })), codec.binary) as { edge: { registered: typeof registered } };
    assert.is(back.edge.registered.port, 20005, codec.name);
  }
});

test('the JSON codec spells the kind by name and leaves it out for HTTP (what an older edge expects)', () => {
  const json = WS_CODECS[WS_PROTOCOL_JSON];
  assert.is(JSON.parse(json.encode({ stream: 0, agent: { hello } }) as string).tunnelKind, 'tcp');
  assert.not.ok('tunnelKind' in JSON.parse(json.encode({ stream: 0, agent: { hello: { ...hello, tunnelKind: TunnelKind.HTTP } } }) as string));
});

test('an unknown tunnel kind or a port above 65535 is a ProtocolError on every codec', () => {
  const json = WS_CODECS[WS_PROTOCOL_JSON];
  assert.throws(() => json.decode(Buffer.from(JSON.stringify({ stream: 0, type: 'hello', name: 'db', tunnelKind: 'sctp' })), false), (e: Error) => (e as { code?: string }).code === 'ERR_PROTOCOL');
  assert.throws(() => decodeAgentMessage(encodeAgentMessage({ hello: { ...hello, tunnelKind: 9 as TunnelKind } })), (e: Error) => (e as { code?: string }).code === 'ERR_PROTOCOL');
  assert.throws(() => decodeAgentMessage(encodeAgentMessage({ hello: { ...hello, remotePort: 70_000 } })), (e: Error) => (e as { code?: string }).code === 'ERR_PROTOCOL');
});

test('one DATA chunk carries the largest UDP datagram (65,507 bytes) whole, and WebSocket credit never splits it', () => {
  assert.ok(MAX_CHUNK_DATA_BYTES >= MAX_DATAGRAM_BYTES);
  // ws-mux-stream.ts sends DATA up to a quarter of the peer's window whole (it waits for that much
  // credit); only larger DATA is split. The smallest window a peer may announce keeps datagrams whole.
  assert.ok(Math.floor(MIN_WS_WINDOW_BYTES / 4) >= MAX_DATAGRAM_BYTES);
});

test.run();
