import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './harness.js';
import { hasTool, started, type Running } from './process.js';

/** How long a test waits for haproxy to accept on every frontend. */
const READY_TIMEOUT_MS = 10_000;

/** One listening port of the load balancer and the servers it spreads connections over. */
export interface Frontend {
  /** Port on 127.0.0.1. */
  port: number;
  /** `host:port` of each server, in round-robin order. */
  servers: string[];
  /**
   * Port (on each server's host) whose `/readyz` must answer 200 for the server to get connections
   * (an edge's admin listener): a draining edge is taken out before it stops listening. Default: a
   * TCP connect check of the server's own port.
   */
  readyzPort?: number;
}

/**
 * A real HAProxy (Debian's `haproxy`) in TCP mode, round-robin, in front of several edges: what a user
 * puts in front of a cluster. TCP mode balances connections, so requests on new connections, WebSocket
 * upgrades, agents' gRPC and WebSocket sessions and TCP tunnels all pass unchanged. A server that
 * refuses connections is retried on another one (`option redispatch`) and marked down by a fast check,
 * as a production config would.
 */
export class Haproxy {
  private constructor(
    private readonly proc: Running,
    private readonly dir: string,
  ) {}

  /** Whether haproxy is installed (prints the one skip line when not). */
  static available(suiteName: string): boolean {
    return hasTool('haproxy', ['-v'], suiteName);
  }

  static async start(frontends: Frontend[]): Promise<Haproxy> {
    const dir = mkdtempSync(join(tmpdir(), 'jetty-haproxy-'));
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(frontends));
    const proc = started('haproxy', ['-db', '-f', config]);
    const lb = new Haproxy(proc, dir);
    try {
      await waitFor(async () => {
        if (proc.child.exitCode !== null) throw new Error(`haproxy exited: ${proc.stderr}`);
        const open = await Promise.all(frontends.map((f) => accepts(f.port)));
        return open.every(Boolean);
      }, READY_TIMEOUT_MS, 'haproxy to accept on every frontend');
    } catch (err) {
      await lb.stop();
      throw err;
    }
    return lb;
  }

  async stop(): Promise<void> {
    await this.proc.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP-mode config: one frontend + backend pair per entry, long timeouts (tunnels and SSE are long-lived). */
export function haproxyConfig(frontends: Frontend[]): string {
  const lines = [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout tunnel 1h',
    '  retries 2',
    '  option redispatch',
  ];
  frontends.forEach((f, i) => {
    lines.push(`frontend f${i}`, `  bind 127.0.0.1:${f.port}`, `  default_backend b${i}`);
    lines.push(`backend b${i}`, '  balance roundrobin');
    if (f.readyzPort) lines.push('  option httpchk GET /readyz', '  http-check expect status 200');
    const port = f.readyzPort ? ` port ${f.readyzPort}` : '';
    f.servers.forEach((s, j) => lines.push(`  server s${j} ${s} check${port} inter 300ms fall 1 rise 1`));
  });
  return `${lines.join('\n')}\n`;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
