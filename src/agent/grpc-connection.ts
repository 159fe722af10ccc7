import type { Duplex, Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { Heartbeat } from '../actors/heartbeat.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { AbortError, AgentUnavailableError, ExchangeResetError, NameNotAllowedError, NameTakenError, UnauthorizedError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import { GrpcExchangeChannel } from '../streams/grpc-exchange-channel.js';
import {
  EXCHANGE_METADATA_KEY,
  GRPC_COMMON_OPTIONS,
  GRPC_STREAM_WINDOW_BYTES,
  SESSION_METADATA_KEY,
  TUNNEL_AGENT_SERVICE,
} from '../streams/grpc-service.js';
import { ReadableReader } from '../streams/readable-reader.js';
import { checkRegistered } from './edge-answers.js';
import { certificateError } from './edge-link.js';

/** Idle ForwardHTTP streams the agent keeps open so the edge can start exchanges without a round trip. */
export const MIN_IDLE_STREAMS = 8;
/**
 * How long a stream the agent retires (RESET then half-close) may wait for the edge to finish the
 * call before it is cancelled. The half-close lets the RESET arrive ahead of the stream's end.
 */
export const RETIRE_GRACE_MS = 5_000;
/** How long to wait for the edge to answer Hello. */
export const REGISTER_TIMEOUT_MS = 10_000;

const TunnelAgentClient = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
type Client = InstanceType<typeof TunnelAgentClient>;
type RegisterCall = grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
type ForwardCall = grpc.ClientDuplexStream<HTTPChunk, HTTPChunk>;

/** Called for every exchange the edge starts; the connection does not wait for it. */
export type ExchangeHandler = (head: HTTPChunk, exchange: ExchangeDuplex) => Promise<void>;

export interface GrpcConnectionInit {
  /** The edge's gRPC address, `host:port`. */
  address: string;
  name: string;
  version: string;
  logger: Logger;
  onExchange: ExchangeHandler;
  /** How long registration may take, in ms; default REGISTER_TIMEOUT_MS (auto mode uses less). */
  timeoutMs?: number;
  /** Sent as `authorization: Bearer …` metadata, never in a URL. */
  token?: string;
  /** The edge's domain (discovery): Registered.url must be NAME.DOMAIN. */
  domain?: string;
  /** TLS (verified against `ca`, else the system roots); plaintext when absent. Never downgraded. */
  tls?: { ca?: Buffer };
  /** The previous session id after a reconnect. */
  resume?: string;
  /** The resume secret the edge issued with that session. */
  resumeSecret?: string;
  /** The edge is draining: it sends no new exchanges on this connection. */
  onDrain?: () => void;
}

/**
 * The agent's gRPC session: Register control stream plus a pool of ForwardHTTP streams.
 * Teardown order (close): exchanges aborted → streams cancelled → control stream cancelled →
 * channel closed → `closed` settles.
 */
export class GrpcConnection {
  readonly name: string;
  readonly url: string;
  readonly sessionId: string;
  /** Issued by the edge with this session: presented to resume it after a reconnect. */
  readonly resumeSecret: string;
  /** Resolves with the reason once the session is over (edge gone, closed locally). */
  readonly closed: Promise<Error>;
  private readonly client: Client;
  private readonly control: RegisterCall;
  private readonly reader: ReadableReader<EdgeMessage>;
  private readonly init: GrpcConnectionInit;
  private readonly log: Logger;
  private readonly active = new Map<string, ExchangeDuplex>();
  private readonly channels = new Set<GrpcExchangeChannel>();
  private idleCount = 0;
  private heartbeat: Heartbeat | undefined;
  private closeError: Error | undefined;
  private resolveClosed!: (err: Error) => void;

  private constructor(init: GrpcConnectionInit, client: Client, control: RegisterCall, reader: ReadableReader<EdgeMessage>, registered: { name: string; url: string; sessionId: string; resumeSecret?: string }) {
    this.init = init;
    this.log = init.logger;
    this.client = client;
    this.control = control;
    this.reader = reader;
    this.name = registered.name;
    this.url = registered.url;
    this.sessionId = registered.sessionId;
    this.resumeSecret = registered.resumeSecret ?? '';
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /**
   * Dials the edge and registers `init.name`. Rejects with NameTakenError (name live elsewhere),
   * UsageError (name refused) or AgentUnavailableError (edge unreachable).
   */
  static async connect(init: GrpcConnectionInit): Promise<GrpcConnection> {
    const credentials = init.tls ? grpc.credentials.createSsl(init.tls.ca ?? null) : grpc.credentials.createInsecure();
    const client = new TunnelAgentClient(init.address, credentials, {
      ...GRPC_COMMON_OPTIONS,
      'grpc-node.flow_control_window': GRPC_STREAM_WINDOW_BYTES,
    });
    const md = new grpc.Metadata();
    if (init.token) md.set('authorization', `Bearer ${init.token}`);
    const control = client.register(md) as RegisterCall;
    const reader = new ReadableReader<EdgeMessage>(control as unknown as Readable);
    control.on('error', () => undefined);
    control.write({ hello: { name: init.name, version: init.version, resume: init.resume ?? '', resumeSecret: init.resumeSecret ?? '' } });
    const timeoutMs = init.timeoutMs ?? REGISTER_TIMEOUT_MS;
    const timer = setTimeout(
      () => reader.interrupt(new AgentUnavailableError(`edge at ${init.address} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    let first: EdgeMessage | null;
    try {
      first = await reader.read();
    } catch (err) {
      reader.release();
      control.cancel();
      client.close();
      throw registrationError(err, init.address);
    } finally {
      clearTimeout(timer);
    }
    try {
      if (!first || !('registered' in first) || !first.registered) throw new AgentUnavailableError('edge ended the control stream without registering');
      checkRegistered(first.registered, { name: init.name, domain: init.domain });
    } catch (err) {
      reader.release();
      control.cancel();
      client.close();
      throw err;
    }
    const conn = new GrpcConnection(init, client, control, reader, first.registered);
    conn.start(first.registered.pingIntervalMs ?? 0);
    return conn;
  }

  stats(): { openExchanges: number; idleStreams: number } {
    return { openExchanges: this.active.size, idleStreams: this.idleCount };
  }

  private start(pingIntervalMs: number): void {
    if (pingIntervalMs > 0) {
      this.heartbeat = new Heartbeat({
        intervalMs: pingIntervalMs,
        onDead: (silentMs) => this.close(new AgentUnavailableError(`lost the edge: no ping for ${silentMs} ms`)),
      });
    }
    for (let i = 0; i < MIN_IDLE_STREAMS; i++) this.openStream(undefined);
    void this.controlLoop();
  }

  private async controlLoop(): Promise<void> {
    try {
      for (;;) {
        const msg = await this.reader.read();
        if (msg === null) throw new AgentUnavailableError('edge closed the control stream');
        if ('open' in msg && msg.open) this.openStream(msg.open.headers);
        else if ('cancel' in msg && msg.cancel) {
          this.active.get(msg.cancel.exchangeId)?.abort(new ExchangeResetError('cancelled by the edge', msg.cancel.code), msg.cancel.code);
        } else if (msg.ping) {
          this.heartbeat?.alive();
          this.control.write({ pong: { nonce: msg.ping.nonce } });
        } else if (msg.drain) this.init.onDrain?.();
      }
    } catch (err) {
      this.close(err instanceof AgentUnavailableError ? err : new AgentUnavailableError('lost the edge', { cause: err }));
    }
  }

  /** Opens a ForwardHTTP stream: idle (no head) or carrying the exchange of an Open. */
  private openStream(head: HTTPChunk | undefined): void {
    if (this.closeError) return;
    const metadata = new grpc.Metadata();
    metadata.set(SESSION_METADATA_KEY, this.sessionId);
    if (head) metadata.set(EXCHANGE_METADATA_KEY, head.exchangeId ?? '');
    const call = this.client.forwardHTTP(metadata) as ForwardCall;
    const channel = new GrpcExchangeChannel({
      call: call as unknown as Duplex,
      terminate: () => retire(call),
      keepAfterLateFailure: true,
      onClose: (ch) => this.channels.delete(ch),
    });
    this.channels.add(channel);
    void this.serveChannel(channel, head);
  }

  /**
   * Serves the exchanges of one stream, one after another, until the stream ends. The edge decides
   * when a stream is reused or retired: the agent never ends an idle stream on its own (it could be
   * carrying the edge's next request already).
   */
  private async serveChannel(channel: GrpcExchangeChannel, first: HTTPChunk | undefined): Promise<void> {
    let head = first;
    for (;;) {
      if (head === undefined) {
        this.idleCount++;
        try {
          const next = await channel.next();
          if (next === null) break;
          head = next;
        } catch (err) {
          if (channel.status !== 'closed') {
            this.log.warn({ err: toError(err).message }, 'closing a broken exchange stream');
            channel.close(toError(err));
          }
          break;
        } finally {
          this.idleCount--;
        }
        if (this.idleCount < MIN_IDLE_STREAMS) this.openStream(undefined);
      }
      const exchange = channel.begin(head.exchangeId ?? '');
      this.active.set(exchange.id, exchange);
      await this.init.onExchange(head, exchange);
      await exchange.closed;
      this.active.delete(exchange.id);
      head = undefined;
      if (channel.status !== 'idle') break;
    }
  }

  /** Tells the edge this agent is leaving: no new exchanges; those in flight go on. */
  leave(): void {
    if (!this.closeError && this.control.writable) this.control.write({ drain: { gracePeriodMs: 0 } });
  }

  /** Ends the session. Idempotent. */
  close(err: Error = new AbortError('agent closing')): void {
    if (this.closeError) return;
    this.closeError = err;
    this.heartbeat?.stop();
    for (const exchange of this.active.values()) exchange.abort(err);
    for (const channel of this.channels) channel.close(err);
    this.reader.interrupt(err);
    this.reader.release();
    this.control.cancel();
    this.client.close();
    this.resolveClosed(err);
  }
}

/** Half-closes a ForwardHTTP call (a RESET written before it still arrives), cancelling it if the edge does not finish it in time. */
function retire(call: ForwardCall): void {
  const timer = setTimeout(() => call.cancel(), RETIRE_GRACE_MS);
  timer.unref();
  call.once('status', () => clearTimeout(timer));
  call.once('close', () => clearTimeout(timer));
  if (call.writable) call.end();
  else call.cancel();
}

function registrationError(err: unknown, address: string): Error {
  const code = (err as { code?: unknown }).code;
  const details = (err as { details?: unknown }).details;
  if (code === grpc.status.ALREADY_EXISTS) return new NameTakenError(String(details), { cause: err });
  if (code === grpc.status.INVALID_ARGUMENT) return new UsageError(String(details), { cause: err });
  if (code === grpc.status.UNAUTHENTICATED) return new UnauthorizedError(`the edge refused the token: ${String(details)}`, { cause: err });
  if (code === grpc.status.PERMISSION_DENIED) return new NameNotAllowedError(String(details), { cause: err });
  if (err instanceof AgentUnavailableError) return err;
  const cert = code === grpc.status.UNAVAILABLE ? certificateError(err, address) : undefined;
  if (cert) return cert;
  return new AgentUnavailableError(`cannot register with the edge at ${address}: ${toError(err).message}`, { cause: err });
}
