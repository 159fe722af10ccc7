import type { Duplex, Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { AgentUnavailableError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { GrpcExchangeChannel } from '../streams/grpc-exchange-channel.js';
import {
  EXCHANGE_METADATA_KEY,
  GRPC_CHANNEL_OPTIONS,
  GRPC_STREAM_WINDOW_BYTES,
  SESSION_METADATA_KEY,
  TUNNEL_AGENT_SERVICE,
} from '../streams/grpc-service.js';
import { ReadableReader } from '../streams/readable-reader.js';
import type { AbortOptions } from '../wait.js';
import { refusalError } from './refusals.js';
import { SessionClient, type Registered, type SessionClientInit, type SessionTransport } from './session-client.js';

/** Idle ForwardHTTP streams the agent keeps open so the edge can start exchanges without a round trip. */
export const MIN_IDLE_STREAMS = 8;
/**
 * How long a stream the agent retires (RESET then half-close) may wait for the edge to finish the
 * call before it is cancelled. The half-close lets the RESET arrive ahead of the stream's end.
 */
export const RETIRE_GRACE_MS = 5_000;

const TunnelAgentClient = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
type Client = InstanceType<typeof TunnelAgentClient>;
type RegisterCall = grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
type ForwardCall = grpc.ClientDuplexStream<HTTPChunk, HTTPChunk>;

export interface GrpcConnectionInit extends Omit<SessionClientInit, 'where' | 'window'> {
  /** The edge's gRPC address, `host:port`. */
  address: string;
  logger: Logger;
  /** Sent as `authorization: Bearer …` metadata, never in a URL. */
  token?: string;
  /** TLS (verified against `ca`, else the system roots); plaintext when absent. Never downgraded. */
  tls?: { ca?: Buffer };
}

/**
 * The gRPC adapter of the agent's session: a Register control stream carries the session's messages,
 * a pool of ForwardHTTP streams its exchanges. Teardown order (close): streams cancelled → control
 * stream cancelled → channel closed.
 */
export class GrpcConnection implements SessionTransport {
  private readonly client: Client;
  private readonly control: RegisterCall;
  private readonly reader: ReadableReader<EdgeMessage>;
  private readonly session: SessionClient;
  private readonly log: Logger;
  private readonly channels = new Set<GrpcExchangeChannel>();
  private idleCount = 0;
  private closeError: Error | undefined;
  /** The edge reads folded chunks (Registered.folded_chunks): the exchange streams send them. */
  private peerReadsFolded = false;

  private constructor(init: GrpcConnectionInit, session: SessionClient) {
    this.session = session;
    this.log = init.logger;
    const credentials = init.tls ? grpc.credentials.createSsl(init.tls.ca ?? null) : grpc.credentials.createInsecure();
    this.client = new TunnelAgentClient(init.address, credentials, {
      ...GRPC_CHANNEL_OPTIONS,
      'grpc-node.flow_control_window': GRPC_STREAM_WINDOW_BYTES,
    });
    const md = new grpc.Metadata();
    if (init.token) md.set('authorization', `Bearer ${init.token}`);
    this.control = this.client.register(md) as RegisterCall;
    this.reader = new ReadableReader<EdgeMessage>(this.control as unknown as Readable);
    this.control.on('error', () => undefined);
  }

  /**
   * Dials the edge and registers `init.name`: resolves with the registered session, or rejects with
   * the refusal (REFUSALS) or AgentUnavailableError (edge unreachable).
   */
  static connect(init: GrpcConnectionInit, options?: AbortOptions): Promise<SessionClient> {
    const session = new SessionClient({ ...init, where: init.address });
    const conn = new GrpcConnection(init, session);
    const registered = session.register(conn, options);
    void conn.controlLoop();
    return registered;
  }

  send(msg: AgentMessage): void {
    if (!this.closeError && this.control.writable) this.control.write(msg);
  }

  start(r: Registered): void {
    this.peerReadsFolded = r.foldedChunks === true;
    for (let i = 0; i < MIN_IDLE_STREAMS; i++) this.openStream(undefined);
  }

  open(head: HTTPChunk): void {
    this.openStream(head);
  }

  idleStreams(): number {
    return this.idleCount;
  }

  private async controlLoop(): Promise<void> {
    try {
      for (;;) {
        const msg = await this.reader.read();
        if (msg === null) throw new AgentUnavailableError('edge closed the control stream');
        this.session.receive(msg);
      }
    } catch (err) {
      const { code, details } = (err ?? {}) as { code?: unknown; details?: unknown };
      this.session.ended(refusalError('grpcStatus', code, String(details), err) ?? toError(err));
    }
  }

  /** Opens a ForwardHTTP stream: idle (no head) or carrying the exchange of an Open. */
  private openStream(head: HTTPChunk | undefined): void {
    if (this.closeError) return;
    const metadata = new grpc.Metadata();
    metadata.set(SESSION_METADATA_KEY, this.session.sessionId);
    if (head) metadata.set(EXCHANGE_METADATA_KEY, head.exchangeId ?? '');
    const call = this.client.forwardHTTP(metadata) as ForwardCall;
    const channel = new GrpcExchangeChannel({
      call: call as unknown as Duplex,
      terminate: () => retire(call),
      keepAfterLateFailure: true,
      peerReadsFolded: this.peerReadsFolded,
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
      const exchange = channel.begin(head.exchangeId ?? '', { headEnded: head.end === true });
      await this.session.serve(head, exchange);
      await exchange.closed;
      head = undefined;
      if (channel.status !== 'idle') break;
    }
  }

  /** Tears the transport down (the session has aborted its exchanges). Idempotent. */
  close(err: Error): void {
    if (this.closeError) return;
    this.closeError = err;
    for (const channel of this.channels) channel.close(err);
    this.reader.interrupt(err);
    this.reader.release();
    this.control.cancel();
    this.client.close();
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
