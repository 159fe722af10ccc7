// Phase `sessions` (large): edge RSS per idle agent session. A fresh edge; this process then holds
// SESSIONS agent sessions of one transport at once, each a real registration over its own connection
// (WebSocket: its own socket; gRPC: its own HTTP/2 connection, no shared subchannel) speaking the real
// protocol: Hello, then a Pong for every Ping. Per session = (edge RSS with all held − fresh edge RSS) / N.
import { readdirSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import type { AgentMessage, EdgeMessage } from '../src/codec/tunnel-codec.js';
import { WS_CODECS, WS_PROTOCOL_PROTO, type WsFrame } from '../src/codec/ws-frame.js';
import { TUNNEL_AGENT_SERVICE } from '../src/streams/grpc-service.js';
import { MIB, rssBytes, startEdge, transports } from './procs.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1000);
/** Registrations in flight at once while the sessions are opened. */
const OPEN_CONCURRENCY = 50;
/** Settling time before RSS is read (fresh edge, then with every session held). */
const SETTLE_MS = 2_000;
/** One registration may take this long under load. */
const REGISTER_TIMEOUT_MS = 30_000;
const WINDOW_BYTES = 256 * 1024;

const GrpcClient = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One held session; close() ends it. */
interface Held {
  close(): void;
}

function timeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${REGISTER_TIMEOUT_MS} ms`)), REGISTER_TIMEOUT_MS)))]).finally(() => clearTimeout(t));
}

function holdWs(port: number, name: string): Promise<Held> {
  const codec = WS_CODECS[WS_PROTOCOL_PROTO];
  const ws = new WebSocket(`ws://127.0.0.1:${port}/_jetty/ws`, [WS_PROTOCOL_PROTO]);
  const send = (frame: WsFrame): void => ws.send(codec.encode(frame), { binary: true });
  const registered = new Promise<Held>((resolve, reject) => {
    ws.on('error', reject);
    ws.once('close', (code) => reject(new Error(`websocket session ${name} closed ${code}`)));
    ws.once('open', () => send({ stream: 0, agent: { hello: { name, version: 'bench', window: WINDOW_BYTES } } }));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const f = codec.decode(data, isBinary);
      if (!('edge' in f)) return;
      if (f.edge.registered) resolve({ close: () => ws.terminate() });
      if (f.edge.ping) send({ stream: 0, agent: { pong: { nonce: f.edge.ping.nonce } } });
    });
  });
  return timeout(registered, `websocket session ${name}`).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
}

function holdGrpc(grpcPort: number, name: string): Promise<Held> {
  const client = new GrpcClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const call = (client as unknown as { register(md: grpc.Metadata): grpc.ClientDuplexStream<AgentMessage, EdgeMessage> }).register(new grpc.Metadata());
  const close = (): void => {
    call.cancel();
    client.close();
  };
  const registered = new Promise<Held>((resolve, reject) => {
    call.on('error', reject);
    call.on('data', (m: EdgeMessage) => {
      if (m.registered) resolve({ close });
      if (m.ping) call.write({ pong: { nonce: m.ping.nonce } });
    });
    call.write({ hello: { name, version: 'bench', window: WINDOW_BYTES } });
  });
  return timeout(registered, `grpc session ${name}`).catch((err: unknown) => {
    close();
    throw err;
  });
}

async function perSession(transport: string): Promise<{ fresh: number; held: number; seconds: number; fds: number }> {
  const { edge, port, grpcPort } = await startEdge(['--max-agents', String(SESSIONS * 2), '--max-agents-per-ip', String(SESSIONS * 2), '--max-connections-per-ip', String(SESSIONS * 2), '--log-level', 'warn']);
  const held: Held[] = [];
  try {
    await delay(SETTLE_MS);
    const fresh = rssBytes(edge.pid);
    const t0 = performance.now();
    let next = 0;
    const opener = async (): Promise<void> => {
      while (next < SESSIONS) {
        const name = `hold-${next++}`;
        held.push(await (transport === 'grpc' ? holdGrpc(grpcPort, name) : holdWs(port, name)));
      }
    };
    await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, opener));
    const seconds = (performance.now() - t0) / 1000;
    await delay(SETTLE_MS);
    // Open descriptors show each session has its own connection (no shared HTTP/2 connection).
    return { fresh, held: rssBytes(edge.pid), seconds, fds: readdirSync(`/proc/${edge.pid}/fd`).length };
  } finally {
    for (const h of held) h.close();
    await edge.stop();
  }
}

export async function sessions(): Promise<string> {
  const lines = [
    `A fresh edge; ${SESSIONS} agent sessions held by the bench process over ${SESSIONS} connections (Hello, Pong to every Ping); edge RSS read ${SETTLE_MS / 1000} s after the last registration. One run per transport (each figure already averages ${SESSIONS} sessions).`,
    '',
    '| transport | fresh edge RSS MiB | with sessions held MiB | per session KiB | opened in s | edge open fds |',
    '|---|---|---|---|---|---|',
  ];
  for (const t of transports()) {
    if (!['grpc', 'websocket'].includes(t)) continue;
    process.stderr.write(`sessions: ${SESSIONS} over ${t}\n`);
    const r = await perSession(t);
    lines.push(`| ${t} | ${(r.fresh / MIB).toFixed(1)} | ${(r.held / MIB).toFixed(1)} | ${((r.held - r.fresh) / 1024 / SESSIONS).toFixed(1)} | ${r.seconds.toFixed(1)} | ${r.fds} |`);
  }
  return lines.join('\n');
}
