import { randomUUID } from 'node:crypto';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { AgentSession } from '../actors/agent-session.js';
import { Heartbeat } from '../actors/heartbeat.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { AgentUnavailableError, EdgeUnavailableError, NameNotAllowedError, NameTakenError, ProtocolError, UnauthorizedError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { GrpcExchangeChannel } from '../streams/grpc-exchange-channel.js';
import {
  EXCHANGE_METADATA_KEY,
  GRPC_COMMON_OPTIONS,
  GRPC_CONNECTION_WINDOW_BYTES,
  GRPC_MAX_CONCURRENT_STREAMS,
  GRPC_STREAM_WINDOW_BYTES,
  SESSION_METADATA_KEY,
  TUNNEL_AGENT_SERVICE,
} from '../streams/grpc-service.js';
import { ReadableReader } from '../streams/readable-reader.js';
import { isValidTunnelName } from '../tunnel-name.js';
import type { AgentAdmission } from './agent-admission.js';
import type { EdgeMetrics } from './metrics.js';
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

/** Admission refusals → gRPC status (the agent maps them back). */
function statusFor(err: unknown): grpc.status {
  if (err instanceof UnauthorizedError) return grpc.status.UNAUTHENTICATED;
  if (err instanceof NameNotAllowedError) return grpc.status.PERMISSION_DENIED;
  if (err instanceof NameTakenError) return grpc.status.ALREADY_EXISTS;
  if (err instanceof EdgeUnavailableError) return grpc.status.UNAVAILABLE;
  return grpc.status.INTERNAL;
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

  /** Binds `host:port`; resolves with the bound port. */
  async listen(address: string): Promise<number> {
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.raiseWindows();
    return port;
  }

  /**
   * grpc-js's server takes no window option (nor sets TCP_NODELAY), so each HTTP/2 session gets its
   * windows here; without it a stream moves at most 64 KiB per round trip. test/edge/grpc-endpoint.test.ts
   * fails if this stops working after a grpc-js upgrade.
   */
  private raiseWindows(): void {
    const servers = (this.server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    if (!(servers instanceof Map)) throw new Error('grpc-js internals changed: cannot raise HTTP/2 windows');
    for (const h2 of servers.keys()) {
      // Small frames (HEADERS, END, control) must not wait for Nagle + delayed ACK (≈40 ms).
      h2.on('connection', (socket: Socket) => socket.setNoDelay(true));
      h2.on('session', (session: ServerHttp2Session) => {
        session.settings({ initialWindowSize: GRPC_STREAM_WINDOW_BYTES });
        session.setLocalWindowSize(GRPC_CONNECTION_WINDOW_BYTES);
      });
    }
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
      // The name is not quoted back (the agent knows what it sent): status details are sent as a header,
      // and a long name made one too large to send, so the call never ended.
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
    try {
      await this.init.admission.admit(session, bearer(String(call.metadata.get('authorization')[0] ?? '')), hello?.hello?.resume ?? undefined);
    } catch (err) {
      session.abort(toError(err));
      refuse(err);
      return;
    }
    this.sessions.set(session.id, session);
    const heartbeat = new Heartbeat({
      intervalMs: this.init.pingIntervalMs,
      onTick: (nonce) => call.write({ ping: { nonce } }),
      onRtt: (ms) => this.init.metrics.pingRtt.observe(ms / 1000),
      onDead: (silentMs) => {
        this.log.warn({ name, session: session.id, silentMs }, 'agent missed its pings: closing the session');
        session.abort(new AgentUnavailableError(`agent silent for ${silentMs} ms`));
      },
    });
    void session.closed.then(() => {
      heartbeat.stop();
      this.sessions.delete(session.id);
    });
    call.write({ registered: { name, url: this.init.publicUrl(name), sessionId: session.id, pingIntervalMs: this.init.pingIntervalMs } });
    this.log.info({ name, session: session.id, peer: call.getPeer(), transport: 'grpc' }, 'agent registered');
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
    if (!session) {
      fail(call as unknown as Duplex, grpc.status.NOT_FOUND, 'unknown session');
      return;
    }
    const channel = new GrpcExchangeChannel({
      call: call as unknown as Duplex,
      terminate: (c) => c.end(),
      onIdle: (ch) => session.offerStream(ch),
      readWhileIdle: true,
    });
    const exchangeId = call.metadata.get(EXCHANGE_METADATA_KEY)[0];
    if (exchangeId !== undefined) session.attachStream(String(exchangeId), channel);
    else {
      // A stream opened to answer an Open may carry the response before it is attached; an idle one nothing.
      channel.watchIdle();
      session.offerStream(channel);
    }
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
