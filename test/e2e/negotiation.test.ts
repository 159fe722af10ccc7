import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { WebSocketServer } from 'ws';
import { Agent } from '../../src/agent/agent.js';
import { encodeWsFrameProto, WS_PROTOCOL_PROTO } from '../../src/codec/ws-frame.js';
import type { AgentMessage, EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { silentLogger } from '../../src/logger.js';
import { TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';
import { send, startAgent, startEdge, startOrigin, waitFor, type Origin } from '../helpers/harness.js';

const test = suite<{ origin: Origin }>('e2e/negotiation');

test.before(async (ctx) => {
  ctx.origin = await startOrigin((_req, res) => res.end('hi'));
});

test.after(async (ctx) => {
  await ctx.origin.close();
});

test('auto picks WebSocket when the edge does not offer gRPC', async (ctx) => {
  const edge = await startEdge({ transports: ['websocket'] });
  const agent = await startAgent(edge, ctx.origin.url, 'auto-ws');
  try {
    assert.is(agent.transport, 'websocket/jetty.v1.proto');
    assert.is((await send(edge, 'auto-ws', '/')).body.toString(), 'hi');
  } finally {
    await agent.close();
    await edge.close();
  }
});

test('auto prefers gRPC when both are offered', async (ctx) => {
  const edge = await startEdge();
  const agent = await startAgent(edge, ctx.origin.url, 'auto-grpc');
  try {
    assert.is(agent.transport, 'grpc');
  } finally {
    await agent.close();
    await edge.close();
  }
});

test('auto falls back to WebSocket when the gRPC port refuses or never answers', async (ctx) => {
  // A port nothing listens on (refused at once) and one that accepts and stays silent (blocked).
  const refused = createTcpServer();
  refused.listen(0, '127.0.0.1');
  await once(refused, 'listening');
  const refusedPort = (refused.address() as AddressInfo).port;
  await new Promise<void>((resolve) => refused.close(() => resolve()));
  const sockets = new Set<Socket>();
  const blackhole = createTcpServer((s) => sockets.add(s.on('error', () => undefined)));
  blackhole.listen(0, '127.0.0.1');
  await once(blackhole, 'listening');
  try {
    for (const port of [refusedPort, (blackhole.address() as AddressInfo).port]) {
      const edge = await startEdge({ grpcPublicPort: port });
      try {
        const started = Date.now();
        const agent = await startAgent(edge, ctx.origin.url, 'fallback');
        assert.is(agent.transport, 'websocket/jetty.v1.proto');
        assert.ok(Date.now() - started < 8000, 'fell back within a few seconds');
        assert.is((await send(edge, 'fallback', '/')).body.toString(), 'hi');
        await agent.close();
      } finally {
        await edge.close();
      }
    }
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  }
});

test('forcing a transport the edge does not offer fails with the reason', async (ctx) => {
  const edge = await startEdge({ transports: ['grpc'] });
  try {
    await startAgent(edge, ctx.origin.url, 'forced', { transport: 'websocket' });
    assert.unreachable('registered over a transport the edge does not offer');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_AGENT_UNAVAILABLE');
    assert.match((err as Error).message, /does not offer websocket/);
  } finally {
    await edge.close();
  }
});

test('gRPC: an agent that stops answering pings is declared dead, its exchange gets 502', async () => {
  const edge = await startEdge({ pingIntervalMs: 100 });
  const Client = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
  const client = new Client(`127.0.0.1:${edge.grpcPort}`, grpc.credentials.createInsecure()) as unknown as {
    register: () => grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
    close: () => void;
  };
  const call = client.register();
  call.on('error', () => undefined);
  const ended = new Promise<void>((resolve) => call.on('close', resolve).on('end', resolve).on('error', () => resolve()));
  call.write({ hello: { name: 'mute', version: 'test' } });
  call.on('data', () => undefined);
  try {
    await waitFor(() => edge.stats().sessions === 1, 2000, 'registration');
    // No idle streams and no answer to Open: the request waits until the session is declared dead.
    const pending = send(edge, 'mute', '/');
    await ended;
    assert.is((await pending).res.statusCode, 502);
    await waitFor(() => edge.stats().sessions === 0, 2000, 'session removed');
  } finally {
    call.cancel();
    client.close();
    await edge.close();
  }
});

test('an agent whose edge stops pinging declares it gone and reconnects', async (ctx) => {
  // A minimal fake edge: discovery plus a WebSocket that registers the agent and then says nothing.
  const http = createHttpServer((_req, res) => {
    const publicPort = (http.address() as AddressInfo).port;
    res.end(JSON.stringify({ version: 1, domain: 'localhost', publicPort, transports: { websocket: { path: '/_jetty/ws' } } }));
  });
  const wss = new WebSocketServer({ server: http, handleProtocols: () => WS_PROTOCOL_PROTO });
  wss.on('connection', (ws) => {
    ws.once('message', () => {
      ws.send(encodeWsFrameProto({ stream: 0, edge: { registered: { name: 'x', url: 'http://x.localhost', sessionId: 's', window: 262144, pingIntervalMs: 100 } } }));
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const agent = await Agent.start({
    edge: new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}`),
    origin: ctx.origin.url,
    name: 'x',
    logger: silentLogger(),
  });
  try {
    // Declared gone → the agent starts reconnecting (and keeps the fake edge's name).
    const [reason] = (await once(agent, 'reconnecting')) as [string];
    assert.match(reason, /no ping/);
    await agent.close();
  } finally {
    for (const c of wss.clients) c.terminate();
    wss.close();
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
});

test.run();
