import { request, type IncomingMessage } from 'node:http';

/** Bytes of each streamed body (`/bytes`): several chunks, so a cut shows mid-body. */
export const STREAM_BODY_BYTES = 192 * 1024;
/** Pause before retrying a connection the edge refused (it is restarting): not an attempted request. */
const REFUSED_RETRY_MS = 20;

/**
 * The origin side of the steady load: `/small?i=N` answers `r<N>`, `/bytes?i=N` streams
 * STREAM_BODY_BYTES of the byte N % 251 in chunked encoding (no Content-Length, so only the
 * terminating chunk tells a complete body from a cut one).
 */
export function steadyOrigin(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://x');
  const i = url.searchParams.get('i') ?? '';
  if (url.pathname === '/small') {
    res.end(`r${i}`);
    return true;
  }
  if (url.pathname === '/bytes') {
    const block = Buffer.alloc(16 * 1024, Number(i) % 251);
    let left = STREAM_BODY_BYTES;
    const pump = (): void => {
      while (left > 0) {
        left -= block.length;
        if (!res.write(block)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
    return true;
  }
  return false;
}

export interface SteadyStats {
  ok: number;
  /** Requests that reached the edge and did not get their complete, correct answer. */
  failed: number;
  /** Responses that ended cleanly with a wrong or short body: never allowed. */
  truncatedClean: number;
  /** Connections the edge refused (not listening): retried, not counted as requests. */
  refused: number;
  reasons: Map<string, number>;
}

/**
 * `concurrency` clients sending requests one after another (a new connection each) to a tunnel until
 * stop(): every answer is checked. `inFlight` says how many are running at the moment a fault is injected.
 */
export class SteadyLoad {
  inFlight = 0;
  readonly stats: SteadyStats = { ok: 0, failed: 0, truncatedClean: 0, refused: 0, reasons: new Map() };
  private stopped = false;
  private seq = 0;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly port: () => number,
    private readonly host: string,
    concurrency: number,
  ) {
    this.loops = Array.from({ length: concurrency }, (_, k) => this.loop(k));
  }

  /** Resolves once `n` more requests have succeeded (the tunnel serves again). */
  async okAfter(n: number, timeoutMs = 15_000): Promise<void> {
    const target = this.stats.ok + n;
    const deadline = Date.now() + timeoutMs;
    while (this.stats.ok < target) {
      if (Date.now() > deadline) throw new Error(`only ${this.stats.ok - target + n} of ${n} requests succeeded within ${timeoutMs} ms: ${this.describe()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<SteadyStats> {
    this.stopped = true;
    await Promise.all(this.loops);
    return this.stats;
  }

  describe(): string {
    const reasons = [...this.stats.reasons].map(([r, n]) => `${n} × ${r}`).join('; ');
    return `ok ${this.stats.ok}, failed ${this.stats.failed} (${reasons || 'none'}), refused ${this.stats.refused}`;
  }

  private async loop(k: number): Promise<void> {
    while (!this.stopped) {
      const i = this.seq++;
      // One client in four streams a larger body, so faults also land mid-body.
      const path = k % 4 === 0 ? `/bytes?i=${i}` : `/small?i=${i}`;
      const outcome = await this.once(path, i);
      if (outcome === 'ok') this.stats.ok++;
      else if (outcome === 'refused') {
        this.stats.refused++;
        await new Promise((r) => setTimeout(r, REFUSED_RETRY_MS));
      } else {
        this.stats.failed++;
        if (outcome === 'truncated-clean') this.stats.truncatedClean++;
        this.stats.reasons.set(outcome, (this.stats.reasons.get(outcome) ?? 0) + 1);
      }
    }
  }

  private once(path: string, i: number): Promise<string> {
    return new Promise((resolve) => {
      let sent = false;
      this.inFlight++;
      const done = (outcome: string): void => {
        if (!sent) return;
        sent = false;
        this.inFlight--;
        resolve(outcome);
      };
      sent = true;
      const req = request({ host: '127.0.0.1', port: this.port(), path, headers: { host: this.host }, agent: false });
      req.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : `socket ${err.code ?? err.message}`));
      req.on('response', (res: IncomingMessage) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('error', () => done('cut'));
        res.on('aborted', () => done('cut'));
        res.on('end', () => {
          if (!res.complete) return done('cut');
          if (res.statusCode !== 200) return done(`status ${res.statusCode}`);
          const body = Buffer.concat(parts);
          const good = path.startsWith('/small') ? body.toString() === `r${i}` : body.length === STREAM_BODY_BYTES && body.every((b) => b === i % 251);
          done(good ? 'ok' : 'truncated-clean');
        });
      });
      req.end();
    });
  }
}

/**
 * How one GET through the tunnel ended: 'complete' (a 200 that ended clean), `status N` (another answer
 * that ended clean) or 'cut'.
 */
export function outcomeOf(port: number, host: string, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('error', () => resolve('cut'));
      res.on('aborted', () => resolve('cut'));
      // A reset before the edge sent the head is an honest 502 page; only a 200 that ends clean is wrong.
      res.on('end', () => resolve(res.complete && res.statusCode === 200 ? 'complete' : res.complete ? `status ${res.statusCode}` : 'cut'));
    });
    req.on('error', () => resolve('cut'));
    req.end();
  });
}
