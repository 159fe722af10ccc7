import { execFile } from 'node:child_process';
import * as assert from 'uvu/assert';
import { Agent } from '../../src/agent/agent.js';
import { UDP_REPLY_QUEUE_BYTES } from '../../src/agent/udp-origin.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { silentLogger } from '../../src/logger.js';
import { MAX_DATAGRAM_BYTES, UDP_FLOW_QUEUE_DATAGRAMS, UDP_PORT_QUEUE_BYTES, UDP_SEND_QUEUE_BYTES } from '../../src/edge/udp-listener.js';
import { startEdge, waitFor } from '../helpers/harness.js';
import { jetty, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';
import { freePorts } from '../helpers/free-port.js';
import { portOf, hasCommand } from '../helpers/tcp-tools.js';
import { dnsAnswer, udpClient, UdpOriginServer } from '../helpers/udp-tools.js';

interface Ctx {
  started: Running[];
  origin: UdpOriginServer;
  edge?: Edge;
}

const test = suite<Ctx>('e2e/udp-cli');

test.before.each(async (ctx) => {
  ctx.started = [];
  ctx.origin = await UdpOriginServer.start();
});

test.after.each(async (ctx) => {
  // Only processes this test started, by their handles (PIDs); a stopped one is continued first.
  await Promise.all(ctx.started.map((r) => r.kill()));
  await ctx.edge?.close();
  ctx.edge = undefined;
  await ctx.origin.close();
});

/** A real `jetty udp` agent against an in-process edge; resolves with its public port. */
async function udpAgent(ctx: Ctx, edge: Edge, target: number): Promise<{ agent: Running; port: number }> {
  const agent = jetty(['udp', String(target), '--edge', `http://127.0.0.1:${edge.publicPort}`, '--transport', 'grpc']);
  ctx.started.push(agent);
  const m = await agent.line(/^Forwarding (udp:\/\/localhost:\d+) -> localhost:\d+$/);
  return { agent, port: portOf(m[1]) };
}

const DIG = hasCommand('dig');
if (!DIG) process.stdout.write('e2e/udp-cli: dig test skipped, dig is not installed (apt-get install dnsutils)\n');

(DIG ? test : test.skip)('a real client through the tunnel: dig against a tiny DNS origin', async (ctx) => {
  ctx.origin.onMessage = (msg, rinfo, socket) => socket.send(dnsAnswer(msg, '10.1.2.3'), rinfo.port, rinfo.address);
  ctx.edge = await startEdge({ udpPorts: (await freePorts(1)).join(',') });
  const { port } = await udpAgent(ctx, ctx.edge, ctx.origin.port);
  const out = await new Promise<string>((resolve, reject) =>
    execFile('dig', ['@127.0.0.1', '-p', String(port), 'tunnel.example.test', 'A', '+short', '+tries=1', '+time=5'], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  assert.is(out.trim(), '10.1.2.3');
});

test('overload (agent stopped): datagrams are dropped and counted, the edge holds at most its bounds, traffic resumes', async (ctx) => {
  ctx.edge = await startEdge({ udpPorts: (await freePorts(1)).join(','), udpIdleTimeoutMs: 60_000 });
  const edge = ctx.edge;
  const { agent, port } = await udpAgent(ctx, edge, ctx.origin.port);
  const client = await udpClient();
  try {
    const replies: number[] = [];
    client.on('message', (m) => replies.push(m.byteLength));
    client.send('hello', port, '127.0.0.1');
    await waitFor(() => replies.length === 1, 10_000, 'the first echo');
    agent.child.kill('SIGSTOP');
    const big = Buffer.alloc(60_000, 7);
    let maxBuffered = 0;
    // 3,000 datagrams of 60 KB (180 MB) towards an agent that reads nothing, two per turn of the event
    // loop so the edge (in this process) reads them before its socket buffer overflows.
    for (let i = 0; i < 3_000; i++) {
      client.send(big, port, '127.0.0.1');
      if (i % 2 === 1) {
        await new Promise((r) => setImmediate(r));
        maxBuffered = Math.max(maxBuffered, edge.stats().udpBufferedBytes);
      }
    }
    await waitFor(async () => /jetty_udp_dropped_total\{reason="queue"\} [1-9]/.test(await edge.metrics.registry.metrics()), 10_000, 'drops to be counted');
    maxBuffered = Math.max(maxBuffered, edge.stats().udpBufferedBytes);
    const bound = UDP_FLOW_QUEUE_DATAGRAMS * MAX_DATAGRAM_BYTES + UDP_SEND_QUEUE_BYTES;
    assert.ok(maxBuffered <= bound, `edge held ${maxBuffered} bytes for one flow (bound ${bound})`);
    agent.child.kill('SIGCONT');
    // What was queued is delivered, then the flow carries new datagrams again.
    const before = replies.length;
    await waitFor(() => replies.length > before, 20_000, 'echoes after the agent resumed');
    const settled = replies.length;
    client.send('again', port, '127.0.0.1');
    await waitFor(() => replies.length > settled && replies.includes(5), 20_000, 'a fresh echo');
  } finally {
    agent.child.kill('SIGCONT');
    client.close();
  }
});

test('overload from many source ports (agent stopped): the port holds at most UDP_PORT_QUEUE_BYTES, not flows × the per-flow bound', async (ctx) => {
  ctx.edge = await startEdge({ udpPorts: (await freePorts(1)).join(','), udpIdleTimeoutMs: 60_000 });
  const edge = ctx.edge;
  const { agent, port } = await udpAgent(ctx, edge, ctx.origin.port);
  const clients = await Promise.all(Array.from({ length: 8 }, () => udpClient()));
  try {
    const replies: string[] = [];
    clients[0].on('message', (m) => replies.push(m.byteLength < 100 ? m.toString() : 'big'));
    clients[0].send('hello', port, '127.0.0.1');
    await waitFor(() => replies.includes('hello'), 10_000, 'the first echo');
    agent.child.kill('SIGSTOP');
    const big = Buffer.alloc(60_000, 7);
    let maxBuffered = 0;
    // 8 flows × 300 datagrams of 60 KB (144 MB): each flow alone stays within its 256 datagrams' bound
    // for a while, together they are far above the port's. One datagram per client per turn of the loop.
    for (let i = 0; i < 300; i++) {
      for (const c of clients) c.send(big, port, '127.0.0.1');
      await new Promise((r) => setImmediate(r));
      maxBuffered = Math.max(maxBuffered, edge.stats().udpBufferedBytes);
    }
    await waitFor(async () => /jetty_udp_dropped_total\{reason="queue"\} [1-9]/.test(await edge.metrics.registry.metrics()), 10_000, 'drops to be counted');
    maxBuffered = Math.max(maxBuffered, edge.stats().udpBufferedBytes);
    const bound = UDP_PORT_QUEUE_BYTES + UDP_SEND_QUEUE_BYTES;
    assert.ok(maxBuffered <= bound, `edge held ${maxBuffered} bytes for one port (bound ${bound})`);
    assert.ok(edge.stats().udpFlows >= 2, 'several flows were open');
    agent.child.kill('SIGCONT');
    // The budget comes back as the flows drain: a fresh datagram is echoed again.
    await waitFor(() => {
      clients[0].send('again', port, '127.0.0.1');
      return replies.includes('again');
    }, 20_000, 'a fresh echo');
  } finally {
    agent.child.kill('SIGCONT');
    for (const c of clients) c.close();
  }
});

test('replies from many flows into a stalled tunnel (edge stopped): the agent holds at most UDP_REPLY_QUEUE_BYTES and counts what it drops', async (ctx) => {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--udp-ports', (await freePorts(1)).join(',')]);
  ctx.started.push(edge);
  const publicPort = (await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1];
  const agent = await Agent.start({ edge: new URL(`http://127.0.0.1:${publicPort}`), origin: new URL(`udp://127.0.0.1:${ctx.origin.port}`), logger: silentLogger(), transport: 'grpc' });
  const clients = await Promise.all(Array.from({ length: 8 }, () => udpClient()));
  try {
    // The origin answers each flow's first datagram once, and keeps where each agent socket is.
    const flows = new Map<number, string>();
    ctx.origin.onMessage = (msg, rinfo, socket) => {
      flows.set(rinfo.port, rinfo.address);
      socket.send(msg, rinfo.port, rinfo.address);
    };
    const port = portOf(agent.url);
    let echoed = 0;
    for (const c of clients) {
      c.on('message', () => echoed++);
      c.send('hi', port, '127.0.0.1');
    }
    await waitFor(() => echoed === clients.length && flows.size === clients.length, 10_000, 'every flow answered');
    edge.child.kill('SIGSTOP');
    // 8 flows × 300 replies of 60 KB (144 MB) towards an edge that reads nothing.
    const big = Buffer.alloc(60_000, 7);
    let maxBuffered = 0;
    for (let i = 0; i < 300; i++) {
      for (const [p, address] of flows) ctx.origin.socket.send(big, p, address);
      await new Promise((r) => setImmediate(r));
      maxBuffered = Math.max(maxBuffered, agent.bufferedBytes());
    }
    assert.ok(maxBuffered > 0, 'replies were queued');
    assert.ok(maxBuffered <= UDP_REPLY_QUEUE_BYTES, `agent held ${maxBuffered} bytes of replies (bound ${UDP_REPLY_QUEUE_BYTES})`);
    // What the bound turned away is counted where a user sees it (/readyz, the status view).
    const dropped = agent.droppedDatagrams() ?? -1;
    const sent = 300 * flows.size;
    assert.ok(dropped > 0 && dropped <= sent - Math.floor(maxBuffered / big.byteLength), `${dropped} replies counted as dropped of ${sent}`);
  } finally {
    edge.child.kill('SIGCONT');
    for (const c of clients) c.close();
    await agent.close();
  }
});

test.run();
