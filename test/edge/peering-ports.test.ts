import { connect } from 'node:net';
import { once } from 'node:events';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { MemoryLeaseStore, startClusterEdge } from '../helpers/cluster-double.js';
import { freePorts } from '../helpers/free-port.js';
import { patternBytes, sha256, startAgent, waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';
import { hashUntilEnd, TcpOriginServer, writeAll } from '../helpers/tcp-tools.js';
import { udpClient, UdpOriginServer } from '../helpers/udp-tools.js';

/**
 * TCP and UDP tunnels in a cluster: every edge listens on every tunnel port, so a client reaching an
 * edge on a port another edge holds is forwarded there (a `stream` or `datagram` exchange on the peer
 * link). The two edges share the port numbers on two loopback addresses (127.0.0.11 and .12).
 */
interface Ctx {
  store: MemoryLeaseStore;
  a: Edge;
  b: Edge;
  tcpPort: number;
  udpPort: number;
  cleanup: Array<() => unknown>;
}

const test = suite<Ctx>('edge/peering-ports');
const MiB = 1024 * 1024;

test.before.each(async (ctx) => {
  ctx.store = new MemoryLeaseStore();
  ctx.cleanup = [];
  [ctx.tcpPort, ctx.udpPort] = await freePorts(2);
  const ports = { tcpPorts: String(ctx.tcpPort), udpPorts: String(ctx.udpPort) };
  ctx.a = await startClusterEdge(ctx.store, 'edge-a', { listen: '127.0.0.11:0', grpcListen: '127.0.0.11:0', peerListen: '127.0.0.11:0', ...ports });
  ctx.b = await startClusterEdge(ctx.store, 'edge-b', { listen: '127.0.0.12:0', grpcListen: '127.0.0.12:0', peerListen: '127.0.0.12:0', ...ports });
});

test.after.each(async (ctx) => {
  for (const c of ctx.cleanup.reverse()) await c();
  await Promise.all([ctx.a.close(), ctx.b.close()]);
});

async function agentOn(ctx: Ctx, origin: URL, name: string): Promise<Agent> {
  const agent = await startAgent(ctx.a, origin, name, { edge: new URL(`http://127.0.0.11:${ctx.a.publicPort}`) });
  ctx.cleanup.push(() => agent.close());
  return agent;
}

test('a TCP connection to the edge without the port is forwarded to the edge holding it: 16 MiB each way, FIN both ways', async (ctx) => {
  const origin = await TcpOriginServer.start();
  ctx.cleanup.push(() => origin.close());
  await agentOn(ctx, new URL(`tcp://127.0.0.1:${origin.port}`), 'tcp-demo');
  await waitFor(() => ctx.store.leases.has(`tcp:${ctx.tcpPort}`), 5000, 'the lease of the port');
  const socket = connect({ host: '127.0.0.12', port: ctx.tcpPort, allowHalfOpen: true });
  await once(socket, 'connect');
  const data = patternBytes(16 * MiB, 4);
  const echoed = hashUntilEnd(socket);
  await writeAll(socket, data);
  const got = await echoed;
  assert.is(got.bytes, data.length);
  assert.is(got.sha, sha256(data));
  assert.is(await metric(ctx.b, 'jetty_peer_forwarded_exchanges_total{kind="stream"}'), 1);
});

test('a UDP flow to the edge without the port is forwarded to the edge holding it, and the replies come back from that port', async (ctx) => {
  const origin = await UdpOriginServer.start();
  ctx.cleanup.push(() => origin.close());
  await agentOn(ctx, new URL(`udp://127.0.0.1:${origin.port}`), 'udp-demo');
  await waitFor(() => ctx.store.leases.has(`udp:${ctx.udpPort}`), 5000, 'the lease of the port');
  const client = await udpClient();
  ctx.cleanup.push(() => client.close());
  const replies: string[] = [];
  client.on('message', (msg, rinfo) => replies.push(`${rinfo.address}:${rinfo.port} ${msg.toString()}`));
  for (const word of ['one', 'two', 'three']) client.send(word, ctx.udpPort, '127.0.0.12');
  await waitFor(() => replies.length === 3, 5000, 'three replies');
  assert.equal(replies.sort(), ['one', 'three', 'two'].map((w) => `127.0.0.12:${ctx.udpPort} ${w}`));
  assert.is(await metric(ctx.b, 'jetty_peer_forwarded_exchanges_total{kind="datagram"}'), 1);
});

async function metric(edge: Edge, series: string): Promise<number> {
  const line = (await edge.metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test.run();
