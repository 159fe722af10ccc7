import { once } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import { WS_CODECS, WS_PROTOCOL_PROTO, type WsCodecName, type WsFrame } from '../../src/codec/ws-frame.js';
import type { Edge } from '../../src/edge/edge-server.js';

export interface RawWsOptions {
  /** Subprotocol (codec); default protobuf. */
  protocol?: WsCodecName;
  /** Sent as `authorization: Bearer …`. */
  token?: string;
}

/**
 * A hand-driven WebSocket agent that speaks the frames directly, so tests can send what a real agent
 * never would (garbage, overruns, unknown streams) and watch how the edge reacts.
 */
export class RawWsAgent {
  readonly frames: WsFrame[] = [];
  closeCode = 0;
  closeReason = '';
  /** The close reason as received, for byte counts. */
  closeReasonBytes: Buffer = Buffer.alloc(0);
  readonly closed: Promise<void>;
  private readonly codec;

  private constructor(
    readonly ws: WebSocket,
    protocol: WsCodecName,
  ) {
    this.codec = WS_CODECS[protocol];
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        this.frames.push(this.codec.decode(data, isBinary));
      } catch {
        // Tests look at frames they can decode.
      }
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReasonBytes = reason;
        this.closeReason = reason.toString();
        resolve();
      }),
    );
    ws.on('error', () => undefined);
  }

  /** An open socket that has said nothing yet. */
  static async open(edge: Edge, options: RawWsOptions = {}): Promise<RawWsAgent> {
    const protocol = options.protocol ?? WS_PROTOCOL_PROTO;
    const headers = options.token ? { authorization: `Bearer ${options.token}` } : undefined;
    const ws = new WebSocket(`ws://127.0.0.1:${edge.publicPort}/_jetty/ws`, [protocol], { headers });
    const agent = new RawWsAgent(ws, protocol);
    await once(ws, 'open');
    return agent;
  }

  /** A registered agent for `name`. */
  static async connect(edge: Edge, name: string, window = 256 * 1024, options: RawWsOptions = {}): Promise<RawWsAgent> {
    const agent = await RawWsAgent.open(edge, options);
    agent.send(RawWsAgent.hello(name, window));
    await agent.next((f) => 'edge' in f && !!f.edge.registered);
    return agent;
  }

  static hello(name: string, window = 256 * 1024): WsFrame {
    return { stream: 0, agent: { hello: { name, version: 'test', window } } };
  }

  /** The window the edge announced in Registered. */
  get edgeWindow(): number {
    const registered = this.frames.find((f) => 'edge' in f && !!f.edge.registered);
    return (registered && 'edge' in registered && registered.edge.registered?.window) || 0;
  }

  send(frame: WsFrame): void {
    this.ws.send(this.codec.encode(frame), { binary: this.codec.binary });
  }

  /** Sends `frames` in one TCP write, so the edge reads them all in one go. */
  sendBurst(frames: Iterable<WsFrame>): void {
    const socket = (this.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    for (const frame of frames) this.send(frame);
    socket.uncork();
  }

  sendRaw(bytes: Buffer | string): void {
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
