import type { Socket } from 'node:dgram';
import * as assert from 'uvu/assert';
import { DATAGRAM_BATCH_HEADER, decodeBatch, encodeBatch, offersBatching } from '../../src/codec/datagram-batch.js';
import { ChunkKind, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import type { WsFrame } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { startEdge, waitFor } from '../helpers/harness.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { suite } from '../helpers/suite.js';
import { freePorts } from '../helpers/free-port.js';
import { udpClient } from '../helpers/udp-tools.js';

/**
 * Datagram batching (codec/datagram-batch.ts) against hand-driven agents: one that predates it (no
 * echo of the offer) must get one datagram per DATA, and a malformed batch from one that accepted
 * it resets only that flow. The real agent's batching runs in the shared UDP suite.
 */
interface Ctx {
  edge: Edge;
  agent: RawWsAgent;
  port: number;
  clients: Socket[];
}

const test = suite<Ctx>('e2e/udp-batch');

test.before.each(async (ctx) => {
  ctx.clients = [];
  ctx.edge = await startEdge({ udpPorts: (await freePorts(1)).join(',') });
  ctx.agent = await RawWsAgent.open(ctx.edge);
  ctx.agent.send({ stream: 0, agent: { hello: { name: '', version: 'raw', window: 256 * 1024, tunnelKind: 2, remotePort: 0 } } } as WsFrame);
  const registered = await ctx.agent.next((f) => 'edge' in f && !!f.edge.registered);
  ctx.port = (registered as { edge: { registered: { port: number } } }).edge.registered.port;
});

test.after.each(async (ctx) => {
  for (const c of ctx.clients) c.close();
  await ctx.agent.close();
  await ctx.edge.close();
});

/** A client flow that records every datagram it receives. */
async function client(ctx: Ctx): Promise<{ socket: Socket; got: string[]; send: (s: string) => void }> {
  const socket = await udpClient();
  ctx.clients.push(socket);
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString()));
  return { socket, got, send: (s) => socket.send(s, ctx.port, '127.0.0.1') };
}

/** DATA payloads the edge sent on `stream`, in order. */
function dataOn(agent: RawWsAgent, stream: number): Buffer[] {
  return agent.frames.filter((f): f is { stream: number; chunk: HTTPChunk } => 'chunk' in f && f.stream === stream && f.chunk.kind === ChunkKind.DATA).map((f) => Buffer.from(f.chunk.data!));
}

const answer = (stream: number, batching: boolean): WsFrame => ({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: batching ? [DATAGRAM_BATCH_HEADER] : [] } });
const data = (stream: number, bytes: Buffer): WsFrame => ({ stream, chunk: { kind: ChunkKind.DATA, data: bytes } });

test('an agent that does not echo the offer gets one datagram per DATA, and its DATA are datagrams', async (ctx) => {
  const c = await client(ctx);
  // Sent together: they wait in the flow's queue while its exchange opens, where a batch would take them all.
  for (const s of ['a', 'bb', 'ccc']) c.send(s);
  const { stream, head } = await ctx.agent.nextExchange();
  assert.ok(offersBatching(head.headers), 'the open offers batching');
  ctx.agent.send(answer(stream, false));
  await waitFor(() => dataOn(ctx.agent, stream).length === 3, 5000, 'three DATA');
  assert.equal(dataOn(ctx.agent, stream).map(String), ['a', 'bb', 'ccc']);
  // Two bytes that would be a batch's length prefix go back as they are: a datagram.
  ctx.agent.send(data(stream, Buffer.from([0, 1, 0x78])));
  ctx.agent.send(data(stream, Buffer.from('yy')));
  await waitFor(() => c.got.length === 2, 5000, 'two replies');
  assert.equal(c.got, ['\0\x01x', 'yy']);
});

test('a malformed batch from an agent that accepted batching resets that flow only', async (ctx) => {
  const a = await client(ctx);
  const b = await client(ctx);
  a.send('a1');
  const flowA = await ctx.agent.nextExchange();
  b.send('b1');
  const flowB = await ctx.agent.nextExchange();
  assert.is(flowA.head.headers!.find((h) => h.name === 'Jetty-Client-Port')!.value, String(a.socket.address().port));
  ctx.agent.send(answer(flowA.stream, true));
  ctx.agent.send(answer(flowB.stream, true));
  await waitFor(() => dataOn(ctx.agent, flowA.stream).length === 1 && dataOn(ctx.agent, flowB.stream).length === 1, 5000, 'one DATA each');
  // Once accepted, the edge's DATA are batches.
  assert.equal(decodeBatch(dataOn(ctx.agent, flowA.stream)[0]).map(String), ['a1']);
  assert.equal(decodeBatch(dataOn(ctx.agent, flowB.stream)[0]).map(String), ['b1']);
  ctx.agent.send(data(flowB.stream, encodeBatch([Buffer.from('r1'), Buffer.from(''), Buffer.from('r22')])));
  await waitFor(() => b.got.length === 3, 5000, 'three replies to b');
  assert.equal(b.got, ['r1', '', 'r22']);
  // A length of 5 with one byte after it: the peer's protocol error.
  ctx.agent.send(data(flowA.stream, Buffer.from([0, 5, 0x61])));
  const reset = await ctx.agent.next((f) => 'chunk' in f && f.stream === flowA.stream && f.chunk.kind === ChunkKind.RESET);
  assert.is((reset as { chunk: HTTPChunk }).chunk.code, ResetCode.PROTOCOL_ERROR);
  assert.is(a.got.length, 0, 'nothing of the malformed batch was sent');
  await waitFor(() => ctx.edge.stats().udpFlows === 1, 5000, 'flow a to end');
  // The session and the other flow go on.
  b.send('b2');
  await waitFor(() => dataOn(ctx.agent, flowB.stream).length === 2, 5000, 'b2');
  ctx.agent.send(data(flowB.stream, encodeBatch([Buffer.from('r3')])));
  await waitFor(() => b.got.length === 4, 5000, 'the fourth reply to b');
  assert.is(b.got[3], 'r3');
  assert.is(ctx.agent.closeCode, 0, 'the session is still open');
});

test.run();
