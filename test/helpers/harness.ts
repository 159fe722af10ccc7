import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type OutgoingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type AgentInit } from '../../src/agent/agent.js';
import { Edge } from '../../src/edge/edge-server.js';
import { silentLogger } from '../../src/logger.js';

/** Resolves once `check()` is true; rejects after `timeoutMs` (a deadline, not a sleep). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once `value()` reads the same twice in a row (a flow that stopped); rejects after `timeoutMs`. */
export async function untilStable(value: () => number, timeoutMs = 10_000, what = 'value to settle'): Promise<void> {
  let last = Number.NaN;
  await waitFor(
    () => {
      const now = value();
      const stable = now === last;
      last = now;
      return stable;
    },
    timeoutMs,
    what,
  );
}

/** `promise`, or a rejection once `timeoutMs` has passed: a regression test fails instead of hanging. */
export async function within<T>(promise: Promise<T>, timeoutMs = 5000, what = 'promise'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Origin {
  server: Server;
  port: number;
  url: URL;
  close(): Promise<void>;
}

export async function startOrigin(handler: RequestListener): Promise<Origin> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: new URL(`http://127.0.0.1:${port}`),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startEdge(init: Partial<Parameters<typeof Edge.start>[0]> = {}): Promise<Edge> {
  return Edge.start({ listen: '127.0.0.1:0', grpcListen: '127.0.0.1:0', logger: silentLogger(), ...init });
}

export async function startAgent(edge: Edge, origin: URL, name: string, options: Partial<AgentInit> = {}): Promise<Agent> {
  return Agent.start({ edge: new URL(`http://127.0.0.1:${edge.publicPort}`), origin, name, logger: silentLogger(), ...options });
}

export interface Fetched {
  res: IncomingMessage;
  body: Buffer;
}

export interface SendOptions {
  method?: string;
  headers?: OutgoingHttpHeaders | string[];
  body?: Buffer | string;
}

/** One request to the edge at 127.0.0.1 with Host `name.localhost` (Node does not resolve *.localhost). */
export function send(edge: Edge, name: string, path: string, options: SendOptions = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const headers = options.headers ?? {};
    const req = request({
      host: '127.0.0.1',
      port: edge.publicPort,
      method: options.method ?? 'GET',
      path,
      headers: Array.isArray(headers) ? headers : { host: `${name}.localhost:${edge.publicPort}`, ...headers },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ res, body: Buffer.concat(parts) }));
    });
    req.end(options.body);
  });
}

export function sha256(data: Buffer | Iterable<Buffer>): string {
  const h = createHash('sha256');
  if (Buffer.isBuffer(data)) h.update(data);
  else for (const d of data) h.update(d);
  return h.digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift), so big bodies need no fixture files. */
export function patternBytes(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (; i < size; i++) buf[i] = i & 0xff;
  return buf;
}

/** What `pumpBlocks` has written so far, and whether the writer ever had to wait for 'drain'. */
export interface Pumped {
  bytes: number;
  blocked: boolean;
  finished: boolean;
}

/**
 * Writes `block` to `out` until `total` bytes, honouring write() === false + 'drain', then ends it when
 * `end` is set. The returned counters let a test watch how far a stalled path lets a writer get.
 */
export function pumpBlocks(out: NodeJS.WritableStream, block: Buffer, total: number, end = false): Pumped {
  const state: Pumped = { bytes: 0, blocked: false, finished: false };
  const pump = (): void => {
    while (state.bytes < total) {
      state.bytes += block.length;
      if (!out.write(block)) {
        state.blocked = true;
        out.once('drain', pump);
        return;
      }
    }
    state.finished = true;
    if (end) out.end();
  };
  pump();
  return state;
}

/** Resolves once `value()` reads the same on two polls in a row (a stalled writer has stopped). */
export async function waitForStable(value: () => number, timeoutMs: number, what: string): Promise<void> {
  let last = -1;
  await waitFor(() => {
    const v = value();
    const stable = v === last;
    last = v;
    return stable;
  }, timeoutMs, what);
}

/** The whole body of an incoming message (an origin's request, a client's response). */
export function readBody(msg: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    msg.on('data', (d: Buffer) => parts.push(d));
    msg.on('end', () => resolve(Buffer.concat(parts)));
    msg.on('error', reject);
  });
}
