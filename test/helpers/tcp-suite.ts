import { once } from 'node:events';
import type { Socket } from 'node:net';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MAX_SOCKET_BUFFERED_BYTES } from '../../src/streams/socket-stream.js';
import { patternBytes, sha256, startAgent, startEdge, waitFor } from './harness.js';
import { suite } from './suite.js';
import { freePorts } from './free-port.js';
import { dial, endingOf, Forwarder, hashUntilEnd, portOf, readUntilEnd, TcpOriginServer, writeAll } from './tcp-tools.js';

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: TcpOriginServer;
  /** The tunnel's public port. */
  port: number;
  /** Between the agent and the edge (both its gRPC and its public port): cut to make the agent reconnect. */
  grpcLink: Forwarder;
  publicLink: Forwarder;
  cleanup: Array<() => Promise<unknown> | void>;
}

const MiB = 1024 * 1024;
const RECONNECT_GRACE_MS = 10_000;

/** How far a writer got: bytes written, waiting for 'drain', when it last wrote; `stop` ends it early. */
interface PumpState {
  written: number;
  blocked: boolean;
  lastProgress: number;
  stop: boolean;
}

const newPumpState = (): PumpState => ({ written: 0, blocked: false, lastProgress: Date.now(), stop: false });

/** Writes up to `total` bytes to `socket` as fast as it takes them (honouring 'drain'), then ends it. */
function pump(socket: Socket, total: number, state: PumpState): void {
  const chunk = patternBytes(64 * 1024, 5);
  const more = (): void => {
    while (!state.stop && state.written < total) {
      state.written += chunk.byteLength;
      state.lastProgress = Date.now();
      if (!socket.write(chunk)) {
        state.blocked = true;
        socket.once('drain', () => {
          state.blocked = false;
          more();
        });
        return;
      }
    }
    socket.end();
  };
  more();
}

/**
 * Resolves once the writer has waited for 'drain' for 500 ms (every buffer on the way is full), with
 * the most the edge buffered meanwhile (sampled at each check).
 */
async function untilStalled(ctx: Ctx, state: PumpState, who: string): Promise<number> {
  let maxBuffered = 0;
  await waitFor(
    () => {
      maxBuffered = Math.max(maxBuffered, ctx.edge.stats().tcpBufferedBytes);
      return state.blocked && Date.now() - state.lastProgress > 500;
    },
    30_000,
    `${who} to stall`,
  );
  return maxBuffered;
}

/**
 * The TCP tunnel suite every transport and codec runs unchanged: real sockets on loopback, an
 * in-process edge and agent (`options` picks the agent's transport), a TCP origin the tests program.
 */
export function tcpSuite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`e2e/tcp-tunnel (${label})`);

  test.before(async (ctx) => {
    ctx.cleanup = [];
    ctx.origin = await TcpOriginServer.start();
    ctx.grpcLink = await Forwarder.start();
    ctx.publicLink = await Forwarder.start();
    ctx.edge = await startEdge({ tcpPorts: (await freePorts(4)).join(','), reconnectGraceMs: RECONNECT_GRACE_MS, grpcPublicPort: ctx.grpcLink.port });
    ctx.grpcLink.target = ctx.edge.grpcPort;
    ctx.publicLink.target = ctx.edge.publicPort;
    ctx.agent = await startAgent(ctx.edge, new URL(`tcp://127.0.0.1:${ctx.origin.port}`), 'tcp-demo', {
      ...options,
      edge: new URL(`http://127.0.0.1:${ctx.publicLink.port}`),
    });
    ctx.port = portOf(ctx.agent.url);
  });

  test.after.each(async (ctx) => {
    ctx.origin.onConnection = (s) => s.pipe(s);
    for (const c of ctx.cleanup.splice(0)) await c();
    // Every connection's state is released once the traffic of a test is over.
    await waitFor(() => ctx.edge.stats().tcpConnections === 0 && ctx.edge.stats().openExchanges === 0 && ctx.agent.stats().openExchanges === 0, 10_000, 'connections to close');
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
    await ctx.grpcLink.close();
    await ctx.publicLink.close();
  });

  test('the agent is given a port of tcp-ports and its URL is tcp://DOMAIN:PORT', (ctx) => {
    assert.match(ctx.agent.url, /^tcp:\/\/localhost:\d+$/);
    assert.ok(ctx.edge.tcpPorts.split(',').includes(String(ctx.port)));
  });

  test('64 MiB each way at once arrive intact (SHA-256 on both ends)', async (ctx) => {
    const size = 64 * MiB;
    const up = patternBytes(size, 11);
    const down = patternBytes(size, 22);
    const atOrigin = new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
      ctx.origin.onConnection = (s) => {
        hashUntilEnd(s).then(resolve, reject);
        void writeAll(s, down);
      };
    });
    const client = await dial(ctx.port);
    const atClient = hashUntilEnd(client);
    await writeAll(client, up);
    const [o, c] = await Promise.all([atOrigin, atClient]);
    assert.equal(o, { sha: sha256(up), bytes: size });
    assert.equal(c, { sha: sha256(down), bytes: size });
    client.destroy();
  });

  test('50 concurrent connections each get their own bytes back', async (ctx) => {
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const data = patternBytes(64 * 1024 + i, i + 1);
        const client = await dial(ctx.port);
        const echoed = readUntilEnd(client);
        await writeAll(client, data);
        const back = await echoed;
        client.destroy();
        return back.equals(data);
      }),
    );
    assert.equal(results.filter(Boolean).length, 50);
  });

  test('client half-close: the origin sees the end of input and can still answer', async (ctx) => {
    ctx.origin.onConnection = (s) => {
      void readUntilEnd(s).then((got) => s.end(`you said ${got.toString()}`));
    };
    const client = await dial(ctx.port);
    const answer = readUntilEnd(client);
    client.end('ping');
    assert.is((await answer).toString(), 'you said ping');
    client.destroy();
  });

  test('origin half-close: the client sees the end and can still send', async (ctx) => {
    const heard = new Promise<string>((resolve) => {
      ctx.origin.onConnection = (s) => {
        s.end('bye first');
        void readUntilEnd(s).then((got) => resolve(got.toString()));
      };
    });
    const client = await dial(ctx.port);
    assert.is((await readUntilEnd(client)).toString(), 'bye first');
    client.end('still here');
    assert.is(await heard, 'still here');
    client.destroy();
  });

  test('a slow reader pauses the origin and the edge buffers stay within MAX_SOCKET_BUFFERED_BYTES', async (ctx) => {
    const total = 256 * MiB;
    const state = newPumpState();
    ctx.origin.onConnection = (s) => pump(s, total, state);
    const client = await dial(ctx.port);
    client.pause();
    const maxBuffered = await untilStalled(ctx, state, 'the origin');
    const stalledAt = state.written;
    assert.ok(stalledAt < total / 4, `origin wrote ${stalledAt} bytes to a reader that reads nothing`);
    assert.ok(maxBuffered <= MAX_SOCKET_BUFFERED_BYTES, `edge buffered ${maxBuffered} bytes for one connection (bound ${MAX_SOCKET_BUFFERED_BYTES})`);
    // Reading resumes: the origin goes on, and everything arrives.
    state.stop = true;
    const rest = new Promise<number>((resolve, reject) => {
      let n = 0;
      client.on('data', (d: Buffer) => (n += d.byteLength));
      client.once('end', () => resolve(n));
      client.once('error', reject);
    });
    client.resume();
    assert.is(await rest, state.written);
    client.destroy();
  });

  test('an origin that does not read pauses the client, and the edge buffers stay within MAX_SOCKET_BUFFERED_BYTES', async (ctx) => {
    const total = 256 * MiB;
    const originSide = new Promise<Socket>((resolve) => {
      ctx.origin.onConnection = (s) => {
        s.pause();
        resolve(s);
      };
    });
    const client = await dial(ctx.port);
    const state = newPumpState();
    pump(client, total, state);
    const origin = await originSide;
    const maxBuffered = await untilStalled(ctx, state, 'the client');
    assert.ok(state.written < total / 4, `client wrote ${state.written} bytes to an origin that reads nothing`);
    assert.ok(maxBuffered <= MAX_SOCKET_BUFFERED_BYTES, `edge buffered ${maxBuffered} bytes for one connection (bound ${MAX_SOCKET_BUFFERED_BYTES})`);
    // The origin reads again: every byte arrives.
    const got = new Promise<number>((resolve) => {
      let n = 0;
      origin.on('data', (d: Buffer) => (n += d.byteLength));
      origin.once('end', () => resolve(n));
    });
    origin.resume();
    assert.is(await got, total);
    // The origin's FIN ends the connection (until then it is a legitimately half-open one).
    const closed = readUntilEnd(client);
    origin.end();
    await closed;
    client.destroy();
  });

  test('a client reset resets the origin connection, and an origin reset resets the client', async (ctx) => {
    const originSide = new Promise<Socket>((resolve) => (ctx.origin.onConnection = resolve));
    const client = await dial(ctx.port);
    client.write('x');
    const origin = await originSide;
    await once(origin, 'data');
    const originEnding = endingOf(origin);
    client.resetAndDestroy();
    assert.is(await originEnding, 'reset');

    const second = new Promise<Socket>((resolve) => (ctx.origin.onConnection = resolve));
    const client2 = await dial(ctx.port);
    client2.write('y');
    const origin2 = await second;
    // Once a byte has come through, the agent's origin connection is surely up.
    await once(origin2, 'data');
    const clientEnding = endingOf(client2);
    origin2.resetAndDestroy();
    assert.is(await clientEnding, 'reset');
  });

  test('an origin that refuses connections: the public connection is reset', async (ctx) => {
    const [closedPort] = await freePorts(1);
    const [port] = await freePorts(1);
    const edge = await startEdge({ tcpPorts: String(port) });
    ctx.cleanup.push(() => edge.close());
    const agent = await startAgent(edge, new URL(`tcp://127.0.0.1:${closedPort}`), 'nobody-home', options);
    ctx.cleanup.push(() => agent.close());
    const client = await dial(portOf(agent.url));
    assert.is(await endingOf(client), 'reset');
  });

  test('the agent loses the edge: open connections are reset, it gets its port back, and a connection made meanwhile waits for it', async (ctx) => {
    const client = await dial(ctx.port);
    client.write('before');
    await waitFor(() => ctx.origin.sockets.size === 1, 5000, 'the origin connection');
    const ending = endingOf(client);
    const reconnected = once(ctx.agent, 'connected');
    ctx.grpcLink.cut();
    ctx.publicLink.cut();
    assert.is(await ending, 'reset');
    // Made while the agent is away: the edge holds the port and the connection waits.
    const waiting = await dial(ctx.port);
    const echoed = readUntilEnd(waiting);
    waiting.end('while away');
    await reconnected;
    assert.is(portOf(ctx.agent.url), ctx.port);
    assert.is((await echoed).toString(), 'while away');
    waiting.destroy();
  });

  test.run();
}
