import { once } from 'node:events';
import { WebSocket } from 'ws';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import { decodeWsFrameProto, encodeWsFrameProto, WS_PROTOCOL_PROTO, type WsFrame } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';

/**
 * A hand-driven WebSocket agent that speaks the protobuf frames directly, so tests can send what a
 * real agent never would (garbage, overruns, unknown streams) and watch how the edge reacts.
 */
export class RawWsAgent {
  readonly frames: WsFrame[] = [];
  closeCode = 0;
  closeReason = '';
  readonly closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      try {
        this.frames.push(decodeWsFrameProto(data));
      } catch {
        // Tests look at frames they can decode.
      }
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      }),
    );
    ws.on('error', () => undefined);
  }

  static async connect(edge: Edge, name: string, window = 256 * 1024): Promise<RawWsAgent> {
    const ws = new WebSocket(`ws://127.0.0.1:${edge.publicPort}/_jetty/ws`, [WS_PROTOCOL_PROTO]);
    const agent = new RawWsAgent(ws);
    await once(ws, 'open');
    agent.send({ stream: 0, agent: { hello: { name, version: 'test', window } } });
    await agent.next((f) => 'edge' in f && !!f.edge.registered);
    return agent;
  }

  send(frame: WsFrame): void {
    this.ws.send(encodeWsFrameProto(frame));
  }

  sendRaw(bytes: Buffer): void {
    this.ws.send(bytes);
  }

  /** The first frame (already received or next) that matches. */
  async next(match: (f: WsFrame) => boolean, timeoutMs = 5000): Promise<WsFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error('expected frame did not arrive');
      if (this.ws.readyState !== WebSocket.OPEN) throw new Error(`socket closed (${this.closeCode} ${this.closeReason})`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Request HEADERS of the next exchange the edge opens. */
  async nextExchange(): Promise<{ stream: number; head: HTTPChunk }> {
    const f = await this.next((x) => 'chunk' in x && x.chunk.kind === 1 && !!x.chunk.method && !this.taken.has(x.stream));
    this.taken.add(f.stream);
    return { stream: f.stream, head: (f as { chunk: HTTPChunk }).chunk };
  }

  private readonly taken = new Set<number>();

  close(): Promise<void> {
    this.ws.terminate();
    return this.closed;
  }
}
