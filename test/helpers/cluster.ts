import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { freePorts } from './free-port.js';
import { waitFor } from './harness.js';
import { Haproxy } from './haproxy.js';
import { jetty, type Running } from './process.js';
import { RedisServer } from './redis-server.js';

/**
 * Several real edge processes sharing one real Redis, behind a real HAProxy: what a user runs
 * ("Running several edges" in the README). Edge i listens on 127.0.0.1i (all of 127/8 is loopback),
 * every edge on the same port numbers; HAProxy listens on 127.0.0.1 on those same numbers, so the
 * ports an edge advertises (its gRPC port on the own-host page) are right through the balancer too.
 */
export interface ClusterEdge {
  id: string;
  host: string;
  proc: Running;
  /** Its own admin listener (/readyz, /metrics). */
  adminUrl: string;
}

export interface ClusterInit {
  edges?: number;
  /** Extra flags for every edge. */
  edgeArgs?: string[];
}

/**
 * To see why a request failed: JETTY_CLUSTER_LOG=info (the edges' log level; one line per exchange)
 * and JETTY_CLUSTER_LOG_DIR=/some/dir (where each edge's output goes when it exits).
 */
const LOG_LEVEL = process.env.JETTY_CLUSTER_LOG;
const LOG_DIR = process.env.JETTY_CLUSTER_LOG_DIR;

/** Milliseconds an edge holds a vanished agent's name (short: fault tests wait for it at most once). */
export const CLUSTER_RECONNECT_GRACE_MS = 5_000;

export class Cluster {
  readonly edges: ClusterEdge[] = [];
  /** Secret the edges authenticate each other with (a fresh one per cluster). */
  readonly peerSecret = randomBytes(24).toString('hex');
  lb: Haproxy | undefined;

  private constructor(
    readonly redis: RedisServer,
    /** Public HTTP port (the balancer's and every edge's). */
    readonly port: number,
    /** gRPC port for agents. */
    readonly grpcPort: number,
    readonly peerPort: number,
    readonly adminPort: number,
    private readonly edgeArgs: string[],
  ) {}

  static async start(init: ClusterInit = {}): Promise<Cluster> {
    const redis = await RedisServer.start();
    const [port, grpcPort, peerPort, adminPort] = await freePorts(4);
    const cluster = new Cluster(redis, port, grpcPort, peerPort, adminPort, init.edgeArgs ?? []);
    try {
      for (let i = 1; i <= (init.edges ?? 3); i++) await cluster.startEdge(i);
      cluster.lb = await Haproxy.start([
        { port, servers: cluster.edges.map((e) => `${e.host}:${port}`), readyzPort: adminPort },
        { port: grpcPort, servers: cluster.edges.map((e) => `${e.host}:${grpcPort}`), readyzPort: adminPort },
      ]);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The registry URL the edges share. */
  get registryUrl(): string {
    return `redis://127.0.0.1:${this.redis.port}/0`;
  }

  /** Starts (or restarts) edge number `i` (1-based) on 127.0.0.1i. */
  async startEdge(i: number): Promise<ClusterEdge> {
    const host = `127.0.0.${10 + i}`;
    const id = `edge-${i}`;
    const proc = jetty([
      'edge',
      '--listen', `${host}:${this.port}`,
      '--grpc-listen', `${host}:${this.grpcPort}`,
      '--admin-listen', `${host}:${this.adminPort}`,
      '--peer-listen', `${host}:${this.peerPort}`,
      '--registry', this.registryUrl,
      '--edge-id', id,
      '--reconnect-grace', String(CLUSTER_RECONNECT_GRACE_MS),
      ...this.edgeArgs,
    ], { JETTY_PEER_SECRET: this.peerSecret, ...(LOG_LEVEL ? { JETTY_LOG_LEVEL: LOG_LEVEL } : {}) });
    // Each edge's output, appended when it exits (one section per test, ===== between them).
    if (LOG_DIR) void proc.exited.then(() => appendFileSync(`${LOG_DIR}/${id}.log`, `${proc.stdout}${proc.stderr}\n=====\n`));
    await proc.line(/^Jetty edge on /);
    const edge: ClusterEdge = { id, host, proc, adminUrl: `http://${host}:${this.adminPort}` };
    this.edges[i - 1] = edge;
    await waitFor(async () => (await fetch(`${edge.adminUrl}/readyz`).catch(() => undefined))?.status === 200, 10_000, `${id} ready`);
    return edge;
  }

  /** `jetty http ORIGIN_PORT` through the balancer, as `name`; resolves once it forwards. */
  async agent(originPort: number, name: string, transport: string, extra: string[] = []): Promise<Running> {
    const agent = jetty(['http', String(originPort), '--edge', `http://127.0.0.1:${this.port}`, '--name', name, '--transport', transport, ...extra]);
    await agent.line(/^Forwarding /);
    return agent;
  }

  /** The edge an agent's session is on (each edge's /readyz counts its own agents; one agent in the cluster). */
  async holder(): Promise<ClusterEdge | undefined> {
    for (const edge of this.edges) {
      if (!edge || edge.proc.child.exitCode !== null || edge.proc.child.signalCode !== null) continue;
      const body = (await (await fetch(`${edge.adminUrl}/readyz`)).json()) as { agents?: number };
      if ((body.agents ?? 0) > 0) return edge;
    }
    return undefined;
  }

  /** The number of the edge (1-based) in `edges`. */
  numberOf(edge: ClusterEdge): number {
    return this.edges.indexOf(edge) + 1;
  }

  async stop(): Promise<void> {
    await this.lb?.stop();
    await Promise.all(this.edges.filter(Boolean).map((e) => e.proc.kill()));
    await this.redis.stop();
  }
}
