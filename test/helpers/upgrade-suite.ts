import { once } from 'node:events';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { loggerOptions } from '../../src/logger.js';
import { EXCHANGE_BUFFER_BOUND_BYTES } from '../../src/streams/grpc-exchange-channel.js';
import { patternBytes, sha256, startAgent, startEdge, untilStable, waitFor, within } from './harness.js';
import { suite } from './suite.js';

const NAME = 'live';
const MiB = 1024 * 1024;
/** What loopback TCP may buffer on the client and origin hops (send + receive, autotuned) beyond the tunnel's bound. */
const KERNEL_SOCKET_SLACK_BYTES = 16 * MiB;

/**
 * An origin that speaks WebSocket (ws) and one raw Upgrade protocol of its own: `/echo` echoes every
 * message (subprotocol `chat` chosen when offered, permessage-deflate accepted), `/deny` answers 403,
 * `/flood` sends 64 KiB binary messages as fast as its socket takes them, `/raw` (Upgrade: rawecho)
 * switches and echoes bytes until the client's FIN, then sends its own FIN.
 */
export class UpgradeOrigin {
  readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: true, handleProtocols: (p) => (p.has('chat') ? 'chat' : false) });
  /** The origin side of the latest WebSocket. */
  last: WebSocket | undefined;
  /** Bytes /flood handed to its socket (the send callback came). */
  flooded = 0;
  floodDone = false;
  private constructor(readonly server: Server) {
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** `handler` answers plain requests (the page of a browser test). */
  static async start(handler: RequestListener = (_req, res) => res.end('plain')): Promise<UpgradeOrigin> {
    const origin = new UpgradeOrigin(createServer(handler));
    await new Promise<void>((resolve) => origin.server.listen(0, '127.0.0.1', resolve));
    return origin;
  }

  get url(): URL {
    return new URL(`http://127.0.0.1:${(this.server.address() as AddressInfo).port}`);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (req.url === '/deny') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nX-Why: policy\r\n\r\ndenied');
      return;
    }
    if (req.url === '/raw') {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: rawecho\r\nX-Seen-Upgrade: ${req.headers.upgrade}\r\n\r\n`);
      if (head.length) socket.write(head);
      socket.pipe(socket);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.last = ws;
      if (req.url === '/flood') return this.flood(ws);
      ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
    });
  }

  /** Sends until nobody reads: each message goes once the previous one reached the socket. */
  private flood(ws: WebSocket): void {
    const block = Buffer.alloc(64 * 1024, 5);
    const next = (): void => {
      if (ws.readyState !== ws.OPEN || this.flooded >= 512 * MiB) {
        this.floodDone = this.flooded >= 512 * MiB;
        return;
      }
      ws.send(block, { binary: true, compress: false }, (err) => {
        if (err) return;
        this.flooded += block.length;
        next();
      });
    };
    next();
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A WebSocket client through the edge at 127.0.0.1 with Host `name.localhost`. */
export function wsClient(edge: Edge, path: string, protocols: string[] = [], name = NAME): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${edge.publicPort}${path}`, protocols, { headers: { host: `${name}.localhost` }, maxPayload: 128 * MiB });
  ws.on('error', () => undefined);
  return ws;
}

/** The next message of `ws`. */
async function message(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  const [data, binary] = (await within(once(ws, 'message'), 10_000, 'a message')) as [Buffer, boolean];
  return { data, binary };
}

/** The close code and reason `ws` saw. */
async function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === ws.CLOSED) throw new Error('already closed');
  const [code, reason] = (await within(once(ws, 'close'), 10_000, 'the close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: UpgradeOrigin;
  clients: WebSocket[];
  sockets: Socket[];
}

/**
 * Upgrade / WebSocket pass-through end to end (DESIGN.md §6.2), one suite every transport and codec
 * runs unchanged: `options` picks the agent's transport (gRPC, WebSocket+protobuf, WebSocket+JSON).
 */
export function upgradeSuite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`e2e/upgrade (${label})`);

  test.before(async (ctx) => {
    ctx.origin = await UpgradeOrigin.start();
    ctx.edge = await startEdge();
    ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME, options);
  });

  test.before.each((ctx) => {
    ctx.clients = [];
    ctx.sockets = [];
  });

  test.after.each(async (ctx) => {
    for (const ws of ctx.clients) ws.terminate();
    for (const s of ctx.sockets) s.destroy();
    // An upgraded connection counts as an exchange until both sides are done with it.
    await waitFor(() => ctx.edge.stats().openExchanges === 0 && ctx.agent.stats().openExchanges === 0, 5000, 'open exchanges to reach zero');
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });

  const open = async (ctx: Ctx, path: string, protocols: string[] = []): Promise<WebSocket> => {
    const ws = wsClient(ctx.edge, path, protocols);
    ctx.clients.push(ws);
    await within(once(ws, 'open'), 10_000, 'the WebSocket to open');
    return ws;
  };

  test('text and binary messages echo; the subprotocol and extension the origin chose reach the client', async (ctx) => {
    const ws = await open(ctx, '/echo', ['nope', 'chat']);
    assert.is(ws.protocol, 'chat');
    assert.match(ws.extensions, /permessage-deflate/);
    // An upgraded connection is one exchange in flight while it lasts.
    assert.is(ctx.edge.stats().openExchanges, 1);
    ws.send('hello, tunnel');
    const text = await message(ws);
    assert.is(text.binary, false);
    assert.is(text.data.toString(), 'hello, tunnel');
    const bytes = patternBytes(100_000, 3);
    ws.send(bytes);
    const bin = await message(ws);
    assert.is(bin.binary, true);
    assert.ok(bin.data.equals(bytes));
    ws.close(1000);
    await closed(ws);
  });

  test('64 MiB each way arrive byte for byte (SHA-256)', async (ctx) => {
    const ws = await open(ctx, '/echo');
    const payload = patternBytes(64 * MiB, 11);
    const parts: Buffer[] = [];
    let received = 0;
    const all = new Promise<void>((resolve) => {
      ws.on('message', (d: Buffer) => {
        parts.push(d);
        received += d.length;
        if (received >= payload.length) resolve();
      });
    });
    const part = MiB;
    for (let off = 0; off < payload.length; off += part) {
      // The client's own buffer stays small: the tunnel's backpressure is what paces it.
      if (ws.bufferedAmount > 8 * MiB) await waitFor(() => ws.bufferedAmount < 2 * MiB, 20_000, 'the client buffer to drain');
      ws.send(payload.subarray(off, off + part), { compress: false });
    }
    await within(all, 50_000, '64 MiB to come back');
    assert.is(received, payload.length);
    assert.is(sha256(parts), sha256(payload));
    ws.close(1000);
    await closed(ws);
  });

  test('a slow WebSocket reader pauses the origin within the bounds of the path', async (ctx) => {
    const ws = await open(ctx, '/flood');
    let received = 0;
    ws.on('message', (d: Buffer) => (received += d.length));
    await waitFor(() => received > 0, 5000, 'the first message');
    ws.pause();
    // Settle: the origin stops once every window and socket buffer along the path is full.
    await untilStable(() => ctx.origin.flooded, 10_000, 'the origin to stop');
    assert.ok(!ctx.origin.floodDone, 'origin sent everything although nobody read');
    // Everything between the two ends: the exchange bound (gRPC's, the larger; WebSocket credit is 1 MiB)
    // plus the kernel buffers of the two TCP hops at the ends (measured: 3.6 to 7.6 MiB in all).
    const held = ctx.origin.flooded - received;
    assert.ok(held < EXCHANGE_BUFFER_BOUND_BYTES + KERNEL_SOCKET_SLACK_BYTES, `the path held ${held} bytes`);
    ws.resume();
    await waitFor(() => received > ctx.origin.flooded - MiB && received > held, 20_000, 'the client to catch up');
    ws.terminate();
  });

  test('the client closing ends the origin side with its code and reason', async (ctx) => {
    const ws = await open(ctx, '/echo');
    const originClosed = once(ctx.origin.last!, 'close');
    // Either end may see its close first (the origin's waits for the agent's FIN).
    const clientClosed = closed(ws);
    ws.close(4000, 'client bye');
    const [code, reason] = (await within(originClosed, 10_000, 'the origin to see the close')) as [number, Buffer];
    assert.is(code, 4000);
    assert.is(reason.toString(), 'client bye');
    assert.is((await clientClosed).code, 4000);
  });

  test('the origin closing ends the client side with its code and reason', async (ctx) => {
    const ws = await open(ctx, '/echo');
    const seen = closed(ws);
    ctx.origin.last!.close(4001, 'origin bye');
    assert.equal(await seen, { code: 4001, reason: 'origin bye' });
  });

  test('an origin reset drops the client connection (1006, no close frame)', async (ctx) => {
    const ws = await open(ctx, '/echo');
    const seen = closed(ws);
    ctx.origin.last!.terminate();
    assert.is((await seen).code, 1006);
  });

  test('a non-101 answer reaches the client as an ordinary response and the connection closes', async (ctx) => {
    const ws = wsClient(ctx.edge, '/deny');
    ctx.clients.push(ws);
    const [, res] = (await within(once(ws, 'unexpected-response'), 10_000, 'the answer')) as [unknown, IncomingMessage];
    assert.is(res.statusCode, 403);
    assert.is(res.headers['x-why'], 'policy');
    assert.is(res.headers.connection, 'close');
    const body: Buffer[] = [];
    for await (const d of res) body.push(d as Buffer);
    assert.is(Buffer.concat(body).toString(), 'denied');
  });

  test('any Upgrade protocol passes as raw bytes, and a half-close crosses both ways', async (ctx) => {
    const socket = connect(ctx.edge.publicPort, '127.0.0.1');
    ctx.sockets.push(socket);
    await once(socket, 'connect');
    // Bytes right behind the head reach the origin too (Node hands them to 'upgrade' as `head`).
    socket.write(`GET /raw HTTP/1.1\r\nHost: ${NAME}.localhost\r\nConnection: Upgrade\r\nUpgrade: rawecho\r\n\r\nearly-`);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    const text = (): string => Buffer.concat(chunks).toString('latin1');
    await waitFor(() => text().includes('early-'), 5000, 'the switch and the early bytes');
    assert.match(text(), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(text(), /\r\nX-Seen-Upgrade: rawecho\r\n/i);
    socket.write('late');
    socket.end();
    await within(once(socket, 'end'), 10_000, 'the origin FIN');
    assert.ok(text().endsWith('\r\n\r\nearly-late'), text());
  });

  test('an Upgrade field with no protocol is no upgrade: an ordinary request, answered on a kept connection', async (ctx) => {
    const socket = connect(ctx.edge.publicPort, '127.0.0.1');
    ctx.sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.write(`GET /raw HTTP/1.1\r\nHost: ${NAME}.localhost\r\nConnection: upgrade\r\nUpgrade: \r\n\r\n`);
    await waitFor(() => Buffer.concat(chunks).toString().endsWith('plain'), 5000, 'the answer');
    assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 200 /);
  });

  // Regression: after a refused upgrade the edge only half-closed the socket; a client that never sent its
  // FIN held it, and the edge's close() (which waits for every connection) with it.
  test('after a refused upgrade the edge lets go of a client that never closes its side', async () => {
    const origin = await UpgradeOrigin.start();
    const edge = await startEdge();
    const agent = await startAgent(edge, origin.url, NAME, options);
    const socket = connect({ port: edge.publicPort, host: '127.0.0.1', allowHalfOpen: true });
    try {
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.write(`GET /deny HTTP/1.1\r\nHost: ${NAME}.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      await within(once(socket, 'end'), 10_000, 'the answer and the edge FIN');
      assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 403 [^]*\r\n\r\ndenied$/);
      await agent.close();
      await within(edge.close(), 5000, 'the edge to close beside a half-open client');
    } finally {
      socket.destroy();
      await agent.close();
      await edge.close();
      await origin.close();
    }
  });

  test('an upgraded connection counts against tunnel-max-exchanges: the next upgrade gets 429 while it lasts', async () => {
    const origin = await UpgradeOrigin.start();
    const edge = await startEdge({ limits: { tunnelMaxExchanges: 1 } });
    const agent = await startAgent(edge, origin.url, NAME, options);
    try {
      const first = wsClient(edge, '/echo');
      await within(once(first, 'open'), 10_000, 'the first WebSocket to open');
      const second = wsClient(edge, '/echo');
      const [, res] = (await within(once(second, 'unexpected-response'), 10_000, 'the refusal')) as [unknown, IncomingMessage];
      assert.is(res.statusCode, 429);
      assert.is(res.headers['x-jetty-error'], 'ERR_TUNNEL_LIMIT');
      res.resume();
      first.close(1000);
      await closed(first);
      await waitFor(() => edge.stats().openExchanges === 0, 5000, 'the exchange to end');
      const third = wsClient(edge, '/echo');
      await within(once(third, 'open'), 10_000, 'a WebSocket once the first is gone');
      third.terminate();
    } finally {
      await agent.close();
      await edge.close();
      await origin.close();
    }
  });

  test('upgrade-idle-timeout ends an upgraded connection with no bytes either way; one log line tells its bytes and time', async () => {
    const origin = await UpgradeOrigin.start();
    const log: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) log.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const edge = await startEdge({ logger: pino(loggerOptions('info', 'edge'), sink), limits: { upgradeIdleTimeoutMs: 300 } });
    const agent = await startAgent(edge, origin.url, NAME, options);
    try {
      const ws = wsClient(edge, '/echo');
      await within(once(ws, 'open'), 10_000, 'the WebSocket to open');
      ws.send('ping');
      await message(ws);
      const quiet = performance.now();
      const { code } = await closed(ws);
      assert.is(code, 1006);
      assert.ok(performance.now() - quiet >= 250, 'closed before the idle timeout');
      await waitFor(() => edge.stats().openExchanges === 0, 5000, 'the exchange to end');
      await waitFor(() => log.some((l) => l.upgrade === 'websocket'), 5000, 'the log line');
      const lines = log.filter((l) => l.upgrade === 'websocket');
      assert.is(lines.length, 1);
      // One 'ping' frame each way, deflated (permessage-deflate) to 6 bytes, a 2-byte header, and the
      // client's 4-byte mask: the edge counts raw bytes, never frames.
      assert.equal([lines[0].status, lines[0].bytesIn, lines[0].bytesOut, lines[0].code], [101, 12, 8, 'ERR_IDLE_TIMEOUT']);
      assert.ok(Number(lines[0].ms) >= 250);
    } finally {
      await agent.close();
      await edge.close();
      await origin.close();
    }
  });

  test.run();
}
