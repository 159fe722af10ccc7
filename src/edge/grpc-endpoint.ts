import { randomUUID } from 'node:crypto';
import type { Http2Server } from 'node:http2';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { AgentSession } from '../actors/agent-session.js';
import { Heartbeat } from '../actors/heartbeat.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { AgentUnavailableError, ProtocolError, toError } from '../errors.js';
import { grpcStatusFor } from '../session-errors.js';
import type { Logger } from '../logger.js';
import { GrpcExchangeChannel } from '../streams/grpc-exchange-channel.js';
import {
  EXCHANGE_METADATA_KEY,
  GRPC_COMMON_OPTIONS,
  GRPC_MAX_CONCURRENT_STREAMS,
  SESSION_METADATA_KEY,
  TUNNEL_AGENT_SERVICE,
} from '../streams/grpc-service.js';
import { ReadableReader } from '../streams/readable-reader.js';
import { isValidTunnelName } from '../tunnel-name.js';
import type { AgentAdmission, Admitted } from './agent-admission.js';
import { GrpcConnections } from './grpc-connections.js';
import type { EdgeMetrics } from './metrics.js';
import type { TlsIdentity } from './public-listener.js';
import { bearer } from './tokens.js';

/** How long a new Register stream may take to send Hello. */
export const HELLO_TIMEOUT_MS = 10_000;

type RegisterCall = grpc.ServerDuplexStream<AgentMessage, EdgeMessage>;
type ForwardCall = grpc.ServerDuplexStream<HTTPChunk, HTTPChunk>;

export interface GrpcEndpointInit {
  admission: AgentAdmission;
  metrics: EdgeMetrics;
  logger: Logger;
  /** The public URL of a tunnel name. */
  publicUrl: (name: string) => string;
  /** Per-agent exchange cap; see AgentSession. */
  maxExchanges?: number;
  openTimeoutMs?: number;
  /** Liveness ping interval on Register, in ms. */
  pingIntervalMs: number;
  /** Drain: how long in-flight exchanges get (told to agents). */
  gracePeriodMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per agent connection. */
  maxConcurrentStreams?: number;
}

function fail(call: Duplex, code: grpc.status, details: string): void {
  // grpc-js server calls turn an 'error' carrying {code, details} into that status.
  call.emit('error', Object.assign(new Error(details), { code, details }));
}

/** Admission refusals → gRPC status, from the session error table (the agent maps them back). */
function statusFor(err: unknown): grpc.status {
  return grpcStatusFor(err) ?? grpc.status.INTERNAL;
}

/**
 * The edge's gRPC side: agents Register (one control stream each) and open ForwardHTTP streams.
 * Teardown order (close): sessions aborted (their exchanges and streams with them) → server
 * shut down → sessions forced.
 */
export class GrpcEndpoint {
  private readonly server: grpc.Server;
  private readonly init: GrpcEndpointInit;
  private readonly log: Logger;
  private readonly sessions = new Map<string, AgentSession>();
  /** The connection holding each session's Register call, and the owner it speaks for. */
  private readonly holders = new WeakMap<AgentSession, { connection: string; owner: string }>();
  private readonly connections = new GrpcConnections();

  constructor(init: GrpcEndpointInit) {
    this.init = init;
    this.log = init.logger;
    this.server = new grpc.Server({
      ...GRPC_COMMON_OPTIONS,
      'grpc.max_concurrent_streams': init.maxConcurrentStreams ?? GRPC_MAX_CONCURRENT_STREAMS,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    this.server.addService(TUNNEL_AGENT_SERVICE, {
      register: (call: RegisterCall) => void this.onRegister(call),
      forwardHTTP: (call: ForwardCall) => this.onForward(call),
    });
  }

  /** Binds `host:port`, with TLS when given a certificate and key; resolves with the bound port. */
  async listen(address: string, tls?: TlsIdentity): Promise<number> {
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.attachConnections();
    return port;
  }

  /** Hooks grpc-js's HTTP/2 servers (see GrpcConnections: connection stamps, windows). */
  private attachConnections(): void {
    const servers = (this.server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    if (!(servers instanceof Map)) throw new Error('grpc-js internals changed: cannot reach its HTTP/2 servers');
    this.connections.attach(servers.keys());
  }

  /**
   * A session id is not a credential: a ForwardHTTP joins a session only from the HTTP/2 connection
   * that holds its Register call, or with a token of the same owner.
   */
  private mayForward(call: ForwardCall, session: AgentSession): boolean {
    const holder = this.holders.get(session);
    if (!holder) return false;
    if (holder.connection !== '' && GrpcConnections.of(call.metadata) === holder.connection) return true;
    return holder.owner !== '' && this.init.admission.ownerOf(bearer(String(call.metadata.get('authorization')[0] ?? ''))) === holder.owner;
  }

  private async onRegister(call: RegisterCall): Promise<void> {
    const reader = new ReadableReader<AgentMessage>(call as unknown as Duplex);
    call.on('error', () => undefined);
    const refuse = (err: unknown): void => {
      reader.release();
      this.log.info({ peer: call.getPeer(), reason: toError(err).message }, 'agent registration refused');
      fail(call as unknown as Duplex, statusFor(err), toError(err).message);
    };
    let hello: AgentMessage | null;
    const timer = setTimeout(() => reader.interrupt(new ProtocolError('no Hello in time')), HELLO_TIMEOUT_MS);
    try {
      hello = await reader.read();
    } catch (err) {
      reader.release();
      fail(call as unknown as Duplex, grpc.status.INVALID_ARGUMENT, toError(err).message);
      return;
    } finally {
      clearTimeout(timer);
    }
    const name = hello?.hello?.name ?? '';
    if (!isValidTunnelName(name)) {
      reader.release();
      fail(call as unknown as Duplex, grpc.status.INVALID_ARGUMENT, 'invalid tunnel name: use 1-63 lower-case letters, digits and inner hyphens');
      return;
    }
    const session = new AgentSession({
      id: randomUUID(),
      name,
      transport: 'grpc',
      logger: this.log,
      maxExchanges: this.init.maxExchanges,
      openTimeoutMs: this.init.openTimeoutMs,
      control: {
        sendOpen: (head) => call.write({ open: { headers: head } }),
        sendCancel: (exchangeId, code) => {
          if (call.writable) call.write({ cancel: { exchangeId, code } });
        },
        sendDrain: () => {
          if (call.writable) call.write({ drain: { gracePeriodMs: this.init.gracePeriodMs } });
        },
        close: () => {
          if (call.writable) call.end();
        },
      },
    });
    const connection = GrpcConnections.of(call.metadata);
    let admitted: Admitted;
    try {
      const token = bearer(String(call.metadata.get('authorization')[0] ?? ''));
      const resume = { resume: hello?.hello?.resume || undefined, resumeSecret: hello?.hello?.resumeSecret || undefined };
      admitted = await this.init.admission.admit(session, { token, ...resume, peer: this.connections.addressOf(connection) });
    } catch (err) {
      session.abort(toError(err));
      refuse(err);
      return;
    }
    // The token is checked: only now does this connection get large windows.
    this.connections.raiseWindows(connection);
    this.holders.set(session, { connection, owner: admitted.owner });
    this.sessions.set(session.id, session);
    const heartbeat = new Heartbeat({
      intervalMs: this.init.pingIntervalMs,
      onTick: (nonce) => call.write({ ping: { nonce } }),
      onRtt: (ms) => this.init.metrics.pingRtt.observe(ms / 1000),
      onDead: (silentMs) => {
        this.log.warn({ name, peer: call.getPeer(), silentMs }, 'agent missed its pings: closing the session');
        session.abort(new AgentUnavailableError(`agent silent for ${silentMs} ms`));
      },
    });
    void session.closed.then(() => {
      heartbeat.stop();
      this.sessions.delete(session.id);
    });
    const registered = { name, url: this.init.publicUrl(name), sessionId: session.id, pingIntervalMs: this.init.pingIntervalMs, resumeSecret: admitted.resumeSecret };
    call.write({ registered });
    this.log.info({ name, peer: call.getPeer(), transport: 'grpc' }, 'agent registered');
    // The control stream lives as long as the session: its end (or failure) ends the session.
    try {
      let msg: AgentMessage | null;
      while ((msg = await reader.read()) !== null) {
        if (msg.pong) heartbeat.alive(msg.pong.nonce);
        else if (msg.drain) session.drain();
      }
      session.abort(new AgentUnavailableError('agent closed its control stream'));
    } catch (err) {
      session.abort(new AgentUnavailableError('agent control stream failed', { cause: err }));
    } finally {
      reader.release();
    }
  }

  private onForward(call: ForwardCall): void {
    const sessionId = String(call.metadata.get(SESSION_METADATA_KEY)[0] ?? '');
    const session = this.sessions.get(sessionId);
    if (!session || !this.mayForward(call, session)) {
      fail(call as unknown as Duplex, grpc.status.NOT_FOUND, 'unknown session');
      return;
    }
    const channel = new GrpcExchangeChannel({
      call: call as unknown as Duplex,
      terminate: (c) => c.end(),
      onIdle: (ch) => session.offerStream(ch),
    });
    const exchangeId = call.metadata.get(EXCHANGE_METADATA_KEY)[0];
    if (exchangeId !== undefined) session.attachStream(String(exchangeId), channel);
    else session.offerStream(channel);
  }

  /** Ends the server (sessions are aborted by the edge first). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
