import { createHash } from 'node:crypto';
import type { Socket } from 'node:dgram';
import * as assert from 'uvu/assert';
import type { Agent, AgentInit } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MAX_DATAGRAM_BYTES } from '../../src/edge/udp-listener.js';
import { startAgent, startEdge, waitFor } from './harness.js';
import { suite } from './suite.js';
import { freePorts } from './free-port.js';
import { portOf } from './tcp-tools.js';
import { udpClient, UdpOriginServer } from './udp-tools.js';

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: UdpOriginServer;
  port: number;
  clients: Socket[];
}

/** Datagrams in flight at once in the echo test: few enough for the default socket buffers (≈208 KiB). */
const WINDOW = 3;
const IDLE_MS = 400;

/** Deterministic sizes 4..65,507 (xorshift; room for the datagram's number), so a failure replays. */
function sizes(n: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % (MAX_DATAGRAM_BYTES - 3)) + 4;
  });
}

/** Datagram `i` of `size` bytes: its number, then bytes derived from it. */
function datagram(i: number, size: number): Buffer {
  const d = Buffer.alloc(size, i & 0xff);
  d.writeUInt32BE(i, 0);
  return d;
}

/**
 * The UDP tunnel suite every transport and codec runs unchanged: an in-process edge and agent
 * (`options` picks the transport), an echo origin, real dgram sockets on loopback.
 */
export function udpSuite(label: string, options: Partial<AgentInit>): void {
  const test = suite<Ctx>(`e2e/udp-tunnel (${label})`);

  test.before(async (ctx) => {
    ctx.clients = [];
    ctx.origin = await UdpOriginServer.start();
    ctx.edge = await startEdge({ udpPorts: (await freePorts(2)).join(','), udpIdleTimeoutMs: IDLE_MS, udpMaxFlows: 2 });
    ctx.agent = await startAgent(ctx.edge, new URL(`udp://127.0.0.1:${ctx.origin.port}`), 'udp-demo', options);
    ctx.port = portOf(ctx.agent.url);
  });

  test.after.each(async (ctx) => {
    for (const c of ctx.clients.splice(0)) c.close();
    ctx.origin.onMessage = (msg, rinfo, socket) => socket.send(msg, rinfo.port, rinfo.address);
    // Flows end by their idle timeout once the traffic of a test is over.
    await waitFor(() => ctx.edge.stats().udpFlows === 0 && ctx.agent.stats().openExchanges === 0, 10_000, 'flows to expire');
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });

  test('10,000 datagrams of random sizes up to 65,507 bytes come back whole, in their boundaries, none lost', async (ctx) => {
    const all = sizes(10_000, 20261127);
    const client = await udpClient();
    ctx.clients.push(client);
    const expected = new Map<number, string>();
    let next = 0;
    let received = 0;
    let wrong = 0;
    const send = (): void => {
      const d = datagram(next, all[next]);
      expected.set(next, createHash('sha256').update(d).digest('hex'));
      next++;
      client.send(d, ctx.port, '127.0.0.1');
    };
    const done = new Promise<void>((resolve) => {
      client.on('message', (msg) => {
        const key = msg.readUInt32BE(0);
        if (expected.get(key) !== createHash('sha256').update(msg).digest('hex') || all[key] !== msg.byteLength) wrong++;
        expected.delete(key);
        received++;
        if (next < all.length) send();
        else if (expected.size === 0) resolve();
      });
    });
    for (let i = 0; i < WINDOW; i++) send();
    // A lost datagram would stall the window: the deadline then fails the test with the count.
    await waitFor(() => expected.size === 0 && next === all.length, 50_000, `all echoes (received ${received})`).catch(async (err: Error) => {
      // Where they went: a flow that expired and reopened mid-test (a stall past IDLE_MS on a loaded
      // machine) or a drop the edge counted; neither shown means a socket's buffer (the kernel's count).
      const udp = (await ctx.edge.metrics.registry.metrics()).split('\n').filter((l) => /^jetty_udp_(flows|dropped)_total/.test(l));
      throw new Error(`${err.message}: ${all.length - received} of ${all.length} lost; edge: ${udp.join(', ') || 'no flow ended, nothing dropped'}`);
    });
    await done;
    assert.is(received, all.length);
    assert.is(wrong, 0, 'datagrams merged, split or changed');
  });

  test('two flows at once are kept apart: each client gets only its own replies', async (ctx) => {
    const a = await udpClient();
    const b = await udpClient();
    ctx.clients.push(a, b);
    const got = { a: [] as string[], b: [] as string[] };
    a.on('message', (m) => got.a.push(m.toString()));
    b.on('message', (m) => got.b.push(m.toString()));
    for (let i = 0; i < 20; i++) {
      a.send(`a${i}`, ctx.port, '127.0.0.1');
      b.send(`b${i}`, ctx.port, '127.0.0.1');
    }
    await waitFor(() => got.a.length === 20 && got.b.length === 20, 10_000, 'both flows answered');
    assert.ok(got.a.every((m) => m.startsWith('a')));
    assert.ok(got.b.every((m) => m.startsWith('b')));
    assert.is(ctx.edge.stats().udpFlows, 2);
  });

  test('a flow ends after udp-idle-timeout of silence; the next datagram opens a new one', async (ctx) => {
    const client = await udpClient();
    ctx.clients.push(client);
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    client.send('first', ctx.port, '127.0.0.1');
    await waitFor(() => replies.length === 1, 5000, 'the first reply');
    const peers = ctx.origin.peers.size;
    await waitFor(() => ctx.edge.stats().udpFlows === 0, 5000, 'the flow to expire');
    client.send('second', ctx.port, '127.0.0.1');
    await waitFor(() => replies.length === 2, 5000, 'the second reply');
    assert.equal(replies, ['first', 'second']);
    assert.is(ctx.origin.peers.size, peers + 1, 'the new flow has its own origin socket');
  });

  // Datagrams only stamp the flow; its idle timer re-arms itself for the time left (udp-listener.ts).
  // Each direction alone must keep the flow open past udp-idle-timeout.
  for (const busy of ['client', 'origin'] as const) {
    test(`a flow with a datagram from the ${busy} every udp-idle-timeout / 4 outlives 3 × udp-idle-timeout`, async (ctx) => {
      const client = await udpClient();
      ctx.clients.push(client);
      const count = 12;
      const peers = ctx.origin.peers.size;
      let replies = 0;
      let maxFlows = 0;
      client.on('message', () => replies++);
      let timer: NodeJS.Timeout | undefined;
      // Sends `count` datagrams at the pace (load, not synchronisation): the flow sees no silence longer than it.
      const pace = (send: () => void): void => {
        let sent = 0;
        timer = setInterval(() => {
          maxFlows = Math.max(maxFlows, ctx.edge.stats().udpFlows);
          send();
          if (++sent === count) clearInterval(timer);
        }, IDLE_MS / 4);
      };
      try {
        if (busy === 'client') {
          pace(() => client.send('tick', ctx.port, '127.0.0.1'));
          await waitFor(() => replies === count, 10_000, `${count} echoes`);
        } else {
          // One datagram opens the flow; then only the origin speaks.
          ctx.origin.onMessage = (_msg, rinfo, socket) => pace(() => socket.send('tick', rinfo.port, rinfo.address));
          client.send('start', ctx.port, '127.0.0.1');
          await waitFor(() => replies === count, 10_000, `${count} replies from the origin`);
        }
      } finally {
        clearInterval(timer);
      }
      assert.is(maxFlows, 1, 'one flow all along');
      assert.is(ctx.origin.peers.size, peers + 1, 'one origin socket: the flow never ended and reopened');
    });
  }

  test('udp-max-flows: datagrams of a flow beyond the cap are dropped and counted', async (ctx) => {
    const clients = [await udpClient(), await udpClient(), await udpClient()];
    ctx.clients.push(...clients);
    const answered = [0, 0, 0];
    clients.forEach((c, i) => c.on('message', () => answered[i]++));
    for (const c of clients.slice(0, 2)) c.send('in', ctx.port, '127.0.0.1');
    await waitFor(() => answered[0] === 1 && answered[1] === 1, 5000, 'two flows');
    clients[2].send('over', ctx.port, '127.0.0.1');
    await waitFor(async () => /jetty_udp_dropped_total\{reason="flows"\} [1-9]/.test(await ctx.edge.metrics.registry.metrics()), 5000, 'the drop to be counted');
    assert.is(answered[2], 0);
  });

  test.run();
}
