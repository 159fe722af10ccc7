import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { hasTool, started, type Running } from './process.js';

/**
 * A real Debian redis-server of the test's own, on 127.0.0.1 and a free port, with no persistence
 * (`--save '' --appendonly no`): a restart comes back empty, as after a crash without a disk.
 * It is stopped by its PID (process.ts), never by name.
 */
export class RedisServer {
  private run: Running | undefined;

  private constructor(readonly port: number) {}

  /** `redis-server` is installed (else prints one line for `suiteName`: its tests are skipped). */
  static available(suiteName: string): boolean {
    return hasTool('redis-server', ['--version'], suiteName);
  }

  static async start(): Promise<RedisServer> {
    return RedisServer.startOn(await freePort());
  }

  /** On a port chosen before (a process was told to use it while nothing listened there). */
  static async startOn(port: number): Promise<RedisServer> {
    const server = new RedisServer(port);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts it (again, on the same port) and resolves once it accepts connections. */
  async restart(): Promise<void> {
    this.run = started('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await this.run.line(/Ready to accept connections/, 10_000);
  }

  /** Freezes it (SIGSTOP): connections stay open, nothing answers. */
  pause(): void {
    this.run?.child.kill('SIGSTOP');
  }

  resume(): void {
    this.run?.child.kill('SIGCONT');
  }

  /** SIGKILL, as a crash: its data is gone. Resolves once it has exited. */
  async crash(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.child.kill('SIGCONT');
    run.child.kill('SIGKILL');
    await run.exited;
    this.run = undefined;
  }

  /** Empties every database (a fresh registry for the next test). */
  async flush(): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    try {
      await client.flushall();
    } finally {
      client.disconnect();
    }
  }

  /** Every key in database 0, sorted. */
  async keys(): Promise<string[]> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    try {
      return (await client.keys('*')).sort();
    } finally {
      client.disconnect();
    }
  }

  /** Commands Redis has executed so far (INFO commandstats), as `{ cmdstat_get: 3, … }`. */
  async commandCounts(): Promise<Record<string, number>> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      const text = await client.info('commandstats');
      const out: Record<string, number> = {};
      for (const m of text.matchAll(/^(cmdstat_[^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
      return out;
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await this.run?.kill();
    this.run = undefined;
  }
}
