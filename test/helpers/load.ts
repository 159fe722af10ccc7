import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request, type IncomingMessage, type RequestListener } from 'node:http';
import { patternBytes } from './harness.js';

/** What one load run saw. Every request is either ok, aborted by its own client, or a failure. */
export interface LoadResult {
  ok: number;
  aborted: number;
  failures: Map<string, number>;
  /** A few failure details, for the assertion message. */
  samples: string[];
}

export type LoadKind = 'small' | 'echo' | 'abort-mix';

export interface LoadOptions {
  port: number;
  host: string;
  connections: number;
  durationMs: number;
  kind: LoadKind;
  /** Request body size for `echo`. */
  echoBytes?: number;
}

const ECHO_BODY_SEED = 7;
/** Size of the streamed response that abort-mix clients cut after the first bytes. */
const STREAM_BYTES = 256 * 1024;
const STREAM_PIECE_BYTES = 16 * 1024;

/**
 * The load-test origin: `/small?i=N` answers `r<N>` (so a response attributed to the wrong exchange
 * shows), `/echo` streams the request body back, `/stream` writes STREAM_BYTES in pieces, each
 * after the previous one drained.
 */
export const loadOrigin: RequestListener = (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/small') {
    res.setHeader('content-type', 'text/plain');
    res.end(`r${url.searchParams.get('i') ?? ''}`);
  } else if (url.pathname === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  } else if (url.pathname === '/stream') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const piece = patternBytes(STREAM_PIECE_BYTES, 3);
    let sent = 0;
    const more = (): void => {
      while (sent < STREAM_BYTES) {
        sent += piece.byteLength;
        if (!res.write(piece)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    res.on('error', () => undefined);
    more();
  } else {
    res.writeHead(404).end();
  }
};

interface One {
  outcome: 'ok' | 'aborted' | string;
}

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Runs `connections` keep-alive clients against the edge for `durationMs`, checking every answer
 * (status and body). Bounded in time: each client stops starting requests at the deadline.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: options.connections });
  const result: LoadResult = { ok: 0, aborted: 0, failures: new Map(), samples: [] };
  const deadline = Date.now() + options.durationMs;
  const echoBody = patternBytes(options.echoBytes ?? 1024 * 1024, ECHO_BODY_SEED);
  const echoSha = sha(echoBody);
  let seq = 0;
  const client = async (index: number): Promise<void> => {
    while (Date.now() < deadline) {
      const i = seq++;
      // One client in ten cuts its responses (abort-mix); each abort is its own doing.
      const aborter = options.kind === 'abort-mix' && index % 10 === 0;
      const one = await requestOnce(options, agent, i, aborter, echoBody, echoSha);
      if (one.outcome === 'ok') result.ok++;
      else if (one.outcome === 'aborted') result.aborted++;
      else {
        result.failures.set(one.outcome, (result.failures.get(one.outcome) ?? 0) + 1);
        if (result.samples.length < 5) result.samples.push(`#${i}: ${one.outcome}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.connections }, (_, k) => client(k)));
  } finally {
    agent.destroy();
  }
  return result;
}

function requestOnce(options: LoadOptions, agent: HttpAgent, i: number, aborter: boolean, echoBody: Buffer, echoSha: string): Promise<One> {
  return new Promise<One>((resolve) => {
    const echo = options.kind === 'echo';
    const path = echo ? '/echo' : aborter ? '/stream' : `/small?i=${i}`;
    const req = request({
      host: '127.0.0.1',
      port: options.port,
      method: echo ? 'POST' : 'GET',
      path,
      agent,
      headers: { host: options.host, ...(echo ? { 'content-length': String(echoBody.byteLength) } : {}) },
    });
    let settled = false;
    const done = (outcome: string): void => {
      if (settled) return;
      settled = true;
      resolve({ outcome });
    };
    req.on('error', (err: NodeJS.ErrnoException) => done(`socket error ${err.code ?? err.message}`));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        done(`status ${res.statusCode} ${String(res.headers['x-jetty-error'] ?? '')}`.trim());
        return;
      }
      if (aborter) {
        res.once('data', () => {
          req.destroy();
          done('aborted');
        });
        res.on('error', () => undefined);
        return;
      }
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', (err) => done(`body error ${err.message}`));
      res.on('aborted', () => done('response cut'));
      res.on('end', () => {
        if (!res.complete) return done('response cut');
        const body = Buffer.concat(parts);
        if (echo) done(sha(body) === echoSha ? 'ok' : `wrong echo body (${body.byteLength} bytes)`);
        else done(body.toString() === `r${i}` ? 'ok' : `wrong body ${JSON.stringify(body.toString().slice(0, 40))}`);
      });
    });
    req.end(echo ? echoBody : undefined);
  });
}

/** One line per failure cause, for assertion messages. */
export function describe(result: LoadResult): string {
  const causes = [...result.failures].map(([cause, n]) => `${n} × ${cause}`).join('; ');
  return `ok ${result.ok}, aborted ${result.aborted}, failed: ${causes || 'none'} ${result.samples.join(' | ')}`;
}
