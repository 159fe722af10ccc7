import * as grpc from '@grpc/grpc-js';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../../src/codec/tunnel-codec.js';
import { TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';

const Client = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');

interface RawClient {
  register(md: grpc.Metadata): grpc.ClientDuplexStream<AgentMessage, EdgeMessage>;
  forwardHTTP(md: grpc.Metadata): grpc.ClientDuplexStream<HTTPChunk, HTTPChunk>;
  close(): void;
}

/** A call and the status it ends with. */
export interface RawCall<T> {
  call: grpc.ClientDuplexStream<unknown, T>;
  status: Promise<grpc.StatusObject>;
  /** The first message the edge sends (rejects when the call ends first). */
  first: Promise<T>;
}

/**
 * A hand-driven gRPC agent on its own HTTP/2 connection, so tests can send what a real agent never
 * would (someone else's session id, a resume without its secret) and watch how the edge answers.
 */
export class RawGrpcAgent {
  private readonly client: RawClient;
  private readonly calls = new Set<grpc.ClientDuplexStream<unknown, unknown>>();

  constructor(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.client = new Client(address, credentials) as unknown as RawClient;
  }

  /** Register with `hello`; metadata entries such as `authorization`. */
  register(hello: NonNullable<AgentMessage['hello']>, metadata: Record<string, string> = {}): RawCall<EdgeMessage> {
    const call = this.client.register(toMetadata(metadata));
    call.write({ hello });
    return this.track(call);
  }

  /** Opens a ForwardHTTP stream with these metadata entries (`jetty-session`, `authorization`…). */
  forward(metadata: Record<string, string>): RawCall<HTTPChunk> {
    return this.track(this.client.forwardHTTP(toMetadata(metadata)));
  }

  private track<T>(call: grpc.ClientDuplexStream<never, T>): RawCall<T> {
    const c = call as unknown as grpc.ClientDuplexStream<unknown, T>;
    this.calls.add(c as grpc.ClientDuplexStream<unknown, unknown>);
    c.on('error', () => undefined);
    const status = new Promise<grpc.StatusObject>((resolve) => c.on('status', resolve));
    const first = new Promise<T>((resolve, reject) => {
      c.once('data', resolve);
      void status.then((s) => reject(new Error(`call ended: ${s.code} ${s.details}`)));
    });
    first.catch(() => undefined);
    return { call: c, status, first };
  }

  close(): void {
    for (const c of this.calls) c.cancel();
    this.client.close();
  }
}

function toMetadata(entries: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) md.set(k, v);
  return md;
}
