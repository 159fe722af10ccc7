import type { Http2Server } from 'node:http2';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { AgentSession } from '../actors/agent-session.js';
import type { ControlChannel } from '../actors/control-channel.js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { TransportClosedError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { grpcStatusFor } from '../session-errors.js';
import { GrpcExchangeChannel } from '../streams/grpc-exchange-channel.js';
import {
  EXCHANGE_METADATA_KEY,
  GRPC_COMMON_OPTIONS,
  GRPC_MAX_CONCURRENT_STREAMS,
  SESSION_METADATA_KEY,
  TUNNEL_AGENT_SERVICE,
} from '../streams/grpc-service.js';
import { ReadableReader } from '../streams/readable-reader.js';
import type { AgentAdmission } from './agent-admission.js';
import type { EdgeSessionProtocol } from './edge-session-protocol.js';
import { GrpcConnections } from './grpc-connections.js';
import type { TlsIdentity } from './public-listener.js';
import { bearer } from './tokens.js';

type RegisterCall = grpc.ServerDuplexStream<AgentMessage, EdgeMessage>;
type ForwardCall = grpc.ServerDuplexStream<HTTPChunk, HTTPChunk>;

export interface GrpcEndpointInit {
  protocol: EdgeSessionProtocol;
  /** Who may forward on another agent's session (ownerOf). */
  admission: Pick<AgentAdmission, 'ownerOf'>;
  logger: Logger;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per agent connection. */
  maxConcurrentStreams?: number;
}

function fail(call: Duplex, code: grpc.status, details: string): void {
  // grpc-js server calls turn an 'error' carrying {code, details} into that status.
  call.emit('error', Object.assign(new Error(details), { code, details }));
}

/** The Register call as a session control channel: its messages in, writes that wait for 'drain'. */
function registerChannel(call: RegisterCall, peer: string | undefined): ControlChannel {
  const duplex = call as unknown as Duplex;
  let closed = false;
  duplex.once('close', () => (closed = true));
  return {
    transport: 'grpc',
    peer,
    messages: readAll<AgentMessage>(new ReadableReader<AgentMessage>(duplex)),
    get isClosed() {
      return closed || call.destroyed;
    },
    send: async (msg) => {
      if (!call.writable) throw new TransportClosedError('agent control stream closed');
      if (!call.write(msg)) await drained(duplex);
    },
    close: (err) => {
      if (closed || !call.writable) return;
      closed = true;
      const code = grpcStatusFor(err);
      if (code === undefined) call.end();
      else fail(duplex, code, err.message);
    },
  };
}

/** The reader's items until a clean end; the reader is released when the loop ends. */
async function* readAll<T>(reader: ReadableReader<T>): AsyncGenerator<T> {
  try {
    let item: T | null;
    while ((item = await reader.read()) !== null) yield item;
  } finally {
    reader.release();
  }
}

/** Resolves once `stream` can take more writes, or has closed (the next send then fails). */
function drained(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/**
 * The edge's gRPC adapter: agents Register (one control stream each, handed to the session protocol,
 * edge-session-protocol.ts) and open ForwardHTTP streams (the session's pool of exchange streams).
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

  private onRegister(call: RegisterCall): void {
    call.on('error', () => undefined);
    const connection = GrpcConnections.of(call.metadata);
    const channel = registerChannel(call, this.connections.addressOf(connection));
    let readsFolded = false;
    const accepted = this.init.protocol.accept(channel, {
      token: bearer(String(call.metadata.get('authorization')[0] ?? '')),
      checkHello: (hello) => {
        readsFolded = hello.foldedChunks === true;
      },
      onAdmitted: (session, admitted) => {
        // The token is checked: only now does this connection get large windows.
        this.connections.raiseWindows(connection);
        this.holders.set(session, { connection, owner: admitted.owner });
        session.peerReadsFolded = readsFolded;
        this.sessions.set(session.id, session);
        void session.closed.then(() => this.sessions.delete(session.id));
      },
    });
    accepted.catch((err: unknown) => {
      this.log.error({ peer: call.getPeer(), err }, 'closing agent session: handler fault');
      channel.close(toError(err));
    });
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
      readWhileIdle: true,
      // The agent's Hello said it reads folded chunks: a request without a body goes as HEADERS{end}.
      peerReadsFolded: session.peerReadsFolded,
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
