import { once } from 'node:events';
import { connect, type ClientHttp2Session } from 'node:http2';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import { MIN_IDLE_STREAMS } from '../../src/agent/grpc-connection.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { encodeAgentMessage, type AgentMessage, type EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { CONNECTION_STAMP_KEY } from '../../src/edge/grpc-connections.js';
import { createToken } from '../../src/edge/tokens.js';
import { loggerOptions } from '../../src/logger.js';
import { GRPC_CHANNEL_OPTIONS, GRPC_COMMON_OPTIONS, GRPC_MAX_FRAME_BYTES, GRPC_STREAM_WINDOW_BYTES, SESSION_METADATA_KEY, TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';
import { send, startAgent, startEdge, startOrigin, waitFor, within, type Origin } from '../helpers/harness.js';
import { RawGrpcAgent } from '../helpers/raw-grpc-agent.js';

const test = suite<{ origin: Origin; cleanup: Array<() => unknown> }>('edge/grpc-endpoint');

test.before(async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('origin'));
});

test.before.each((ctx) => {
  ctx.cleanup = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
});

test.after(async (ctx) => {
  await ctx.origin.close();
});

/** The session credentials a real agent holds (what an eavesdropper or a log reader might learn). */
function sessionOf(agent: Agent): { sessionId: string; resumeSecret: string } {
  return (agent as unknown as { current: { session: { sessionId: string; resumeSecret: string } } }).current.session;
}

async function edgeAndAgent(ctx: { origin: Origin; cleanup: Array<() => unknown> }, init: Parameters<typeof startEdge>[0] = {}, token?: string): Promise<{ edge: Edge; agent: Agent; raw: RawGrpcAgent }> {
  const edge = await startEdge(init);
  ctx.cleanup.push(() => edge.close());
  const agent = await startAgent(edge, ctx.origin.url, 'victim', { transport: 'grpc', token });
  ctx.cleanup.push(() => agent.close());
  const raw = new RawGrpcAgent(`127.0.0.1:${edge.grpcPort}`);
  ctx.cleanup.push(() => raw.close());
  await waitFor(() => edge.stats().idleStreams === MIN_IDLE_STREAMS, 2000, "the agent's idle streams");
  return { edge, agent, raw };
}

/** A Register call by hand on a plain HTTP/2 connection, so the test sees the edge's SETTINGS and windows. */
function registerByHand(session: ClientHttp2Session, name: string, token?: string): { registered: Promise<boolean> } {
  const stream = session.request({
    ':method': 'POST',
    ':path': '/jetty.tunnel.v1.TunnelAgent/Register',
    'content-type': 'application/grpc',
    te: 'trailers',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  });
  const msg = encodeAgentMessage({ hello: { name, version: 'test' } });
  const frame = Buffer.alloc(5 + msg.byteLength);
  frame.writeUInt32BE(msg.byteLength, 1);
  frame.set(msg, 5);
  stream.write(frame);
  stream.on('error', () => undefined);
  // Data = Registered; a status first (trailers-only response, trailers, or the end) = refused.
  const registered = new Promise<boolean>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer to Register within 5 s')), 5000);
    const done = (admitted: boolean): void => {
      clearTimeout(timer);
      resolve(admitted);
    };
    stream.once('response', (headers) => headers['grpc-status'] !== undefined && done(false));
    stream.once('data', () => done(true));
    stream.once('trailers', () => done(false));
    stream.once('end', () => done(false));
  });
  return { registered };
}

const DEFAULT_H2_WINDOW_BYTES = 65_535;

// Regression guard: grpc-js's server has no window option, so the edge raises each HTTP/2 session's
// window itself through grpc-js internals. If an upgrade breaks that, agents fall back to 64 KiB
// windows (≈1 MB/s at 40 ms RTT) without any error; this test makes it loud. The windows come only
// once the agent is admitted: before that a peer could make the edge buffer them with no valid token.
test('an admitted agent gets the raised HTTP/2 windows, not 64 KiB; a connection before or without admission keeps 64 KiB', async () => {
  const token = createToken();
  const edge = await startEdge({ tokens: [{ hash: token.hash, names: ['*'] }] });
  const sessions: ClientHttp2Session[] = [];
  try {
    for (const presented of [undefined, 'jt_wrong', token.token]) {
      const session = connect(`http://127.0.0.1:${edge.grpcPort}`);
      sessions.push(session);
      await once(session, 'remoteSettings');
      assert.is(session.remoteSettings.initialWindowSize ?? DEFAULT_H2_WINDOW_BYTES, DEFAULT_H2_WINDOW_BYTES, 'before Register');
      assert.is(session.state.remoteWindowSize, DEFAULT_H2_WINDOW_BYTES, 'connection window before Register');
      assert.ok((session.remoteSettings.maxConcurrentStreams ?? 0) < 100_000, 'a real concurrent-stream limit');
      const admitted = await registerByHand(session, `win-${sessions.length}`, presented).registered;
      assert.is(admitted, presented === token.token);
      // The edge raises the windows before it sends Registered (or refuses), on the same connection.
      if (admitted) {
        await waitFor(() => session.remoteSettings.initialWindowSize === GRPC_STREAM_WINDOW_BYTES, 2000, 'raised stream window');
        assert.ok((session.state.remoteWindowSize ?? 0) > 16 * DEFAULT_H2_WINDOW_BYTES, 'raised connection window');
        assert.is(session.remoteSettings.maxFrameSize, GRPC_MAX_FRAME_BYTES, 'raised frame size: a DATA chunk in one or two frames');
      } else {
        assert.is(session.remoteSettings.initialWindowSize ?? DEFAULT_H2_WINDOW_BYTES, DEFAULT_H2_WINDOW_BYTES, `refused (${presented ?? 'no token'})`);
        assert.ok((session.state.remoteWindowSize ?? Infinity) <= DEFAULT_H2_WINDOW_BYTES, 'connection window after a refusal');
      }
    }
    assert.ok(GRPC_STREAM_WINDOW_BYTES > DEFAULT_H2_WINDOW_BYTES);
  } finally {
    for (const s of sessions) s.destroy();
    await edge.close();
  }
});

// A session id travels in clear on every ForwardHTTP and used to be logged: with it, anyone could
// attach streams to another agent's session and receive its tunnel's requests.
test("a ForwardHTTP from another connection with a live session's id is refused, whatever connection stamp it forges", async (ctx) => {
  const { edge, agent, raw } = await edgeAndAgent(ctx);
  const { sessionId } = sessionOf(agent);
  const idleBefore = edge.stats().idleStreams;
  for (const stamp of ['', '1', '2', '3']) {
    const md: Record<string, string> = { [SESSION_METADATA_KEY]: sessionId };
    if (stamp) md[CONNECTION_STAMP_KEY] = stamp;
    const { status } = raw.forward(md);
    assert.is((await status).code, grpc.status.NOT_FOUND, `stamp "${stamp}"`);
  }
  assert.is(edge.stats().idleStreams, idleBefore);
  assert.is((await send(edge, 'victim', '/')).body.toString(), 'origin');
});

test('with tokens, a ForwardHTTP from another connection is accepted only with a token of the same owner', async (ctx) => {
  const [mine, theirs] = [createToken(), createToken()];
  const { edge, agent, raw } = await edgeAndAgent(ctx, { tokens: [{ hash: mine.hash, names: ['*'] }, { hash: theirs.hash, names: ['*'] }] }, mine.token);
  const { sessionId } = sessionOf(agent);
  for (const token of [undefined, theirs.token, 'jt_wrong']) {
    const md: Record<string, string> = { [SESSION_METADATA_KEY]: sessionId };
    if (token) md.authorization = `Bearer ${token}`;
    assert.is((await raw.forward(md).status).code, grpc.status.NOT_FOUND, token ?? 'no token');
  }
  const idleBefore = edge.stats().idleStreams;
  raw.forward({ [SESSION_METADATA_KEY]: sessionId, authorization: `Bearer ${mine.token}` });
  await waitFor(() => edge.stats().idleStreams === idleBefore + 1, 2000, 'the stream to join the pool');
});

test('open edge: a resume with the session id but without its secret is refused while the agent is live; with it, it takes over', async (ctx) => {
  const { edge, agent, raw } = await edgeAndAgent(ctx);
  const { sessionId, resumeSecret } = sessionOf(agent);
  assert.ok(resumeSecret.length >= 32, 'the edge issued a resume secret');
  for (const secret of ['', 'guess', resumeSecret.slice(1)]) {
    const { status } = raw.register({ name: 'victim', version: 'test', resume: sessionId, resumeSecret: secret });
    assert.is((await status).code, grpc.status.ALREADY_EXISTS, `secret "${secret}"`);
  }
  assert.is((await send(edge, 'victim', '/')).body.toString(), 'origin', 'the agent kept its name');
  const reconnecting = once(agent, 'reconnecting');
  const { first } = raw.register({ name: 'victim', version: 'test', resume: sessionId, resumeSecret });
  assert.ok((await first).registered, 'the holder of the secret resumed the session');
  await reconnecting;
});

test('session ids and resume secrets are not logged at info', async (ctx) => {
  let out = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += chunk;
      cb();
    },
  });
  const edge = await startEdge({ logger: pino(loggerOptions('info', 'edge'), sink), pingIntervalMs: 60_000 });
  ctx.cleanup.push(() => edge.close());
  const secrets: string[] = [];
  for (const transport of ['grpc', 'websocket'] as const) {
    const agent = await startAgent(edge, ctx.origin.url, `logged-${transport}`, { transport });
    const { sessionId, resumeSecret } = sessionOf(agent);
    secrets.push(sessionId, resumeSecret);
    await send(edge, `logged-${transport}`, '/');
    await agent.close();
  }
  await waitFor(() => (out.match(/agent disconnected/g) ?? []).length === 2, 2000, 'disconnect lines');
  assert.match(out, /agent registered/);
  for (const s of secrets) assert.not.ok(out.includes(s), 'a session id or secret in the log');
});

/** A stock grpc-js client of the edge's TunnelAgent service, for Register calls by hand. */
function registerClient(edge: Edge, options: grpc.ChannelOptions) {
  const Client = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
  return new Client(`127.0.0.1:${edge.grpcPort}`, grpc.credentials.createInsecure(), options) as unknown as grpc.Client & {
    register(md?: grpc.Metadata): grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
  };
}

// An invalid Hello name was quoted into the status details: peer text sent back as a header, and a
// name of 100 KB made that header too large to send, so the call never ended.
test('an invalid Hello name is refused with INVALID_ARGUMENT at once, without quoting it', async () => {
  const edge = await startEdge();
  const client = registerClient(edge, GRPC_COMMON_OPTIONS);
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

// With channelz off on its server, grpc-js 1.14's forceShutdown() missed every connection (it tracks them
// only for channelz): an edge closing with an agent connected kept that agent's socket and call open.
test("closing the edge ends a connected agent's calls and connection, even one that never ends its own", async () => {
  const edge = await startEdge();
  // The agent's own channel options (channelz off there is fine: it is the server that must not).
  const client = registerClient(edge, GRPC_CHANNEL_OPTIONS);
  try {
    // A Register call still owing its Hello: the edge's graceful shutdown cannot finish by itself.
    const call = client.register(new grpc.Metadata());
    call.on('error', () => undefined);
    call.on('data', () => undefined);
    let open = true;
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve)).finally(() => (open = false));
    await waitFor(() => client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY, 5000, 'the connection');
    assert.ok(open, 'the call ended before the edge closed');
    await edge.close();
    const status = await within(ended, 5000, 'the call to end with the edge');
    assert.is.not(status.code, grpc.status.OK);
  } finally {
    client.close();
    await edge.close();
  }
});

test.run();
