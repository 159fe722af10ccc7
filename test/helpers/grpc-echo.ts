import { connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { sha256 } from './harness.js';

/** The test service: one message type, the four call shapes. */
const ECHO_PROTO = `
syntax = "proto3";
package jetty.test;
message Msg {
  bytes data = 1;
  int32 count = 2;
  string text = 3;
}
service Echo {
  rpc Unary (Msg) returns (Msg);
  rpc ServerStream (Msg) returns (stream Msg);
  rpc ClientStream (stream Msg) returns (Msg);
  rpc Bidi (stream Msg) returns (stream Msg);
}
`;

export interface Msg {
  data?: Buffer;
  count?: number;
  text?: string;
}

const MsgType = protobuf.parse(ECHO_PROTO).root.lookupType('jetty.test.Msg');
const serialize = (m: Msg): Buffer => Buffer.from(MsgType.encode(MsgType.fromObject(m)).finish());
const deserialize = (b: Buffer): Msg => MsgType.toObject(MsgType.decode(b), { defaults: true }) as Msg;
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/jetty.test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
});

/** jetty.test.Echo for grpc-js, serialised by protobufjs from the proto text above. */
export const ECHO_SERVICE = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
} satisfies grpc.ServiceDefinition;

export type EchoClient = grpc.Client & {
  unary(m: Msg, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  serverStream(m: Msg, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<Msg>;
  clientStream(cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientWritableStream<Msg>;
  bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg>;
};

const EchoClientCtor = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

/** A client of `target` (host:port); `authority` is the :authority it sends (a tunnel's host). */
export function echoClient(target: string, authority?: string): EchoClient {
  const options: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 8 * 1024 * 1024 };
  if (authority) options['grpc.default_authority'] = authority;
  return new EchoClientCtor(target, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
}

/** What the echo server's handlers saw: calls cancelled on the server side (deadline or client cancel). */
export interface EchoServer {
  server: grpc.Server;
  port: number;
  /** Texts of the calls whose handler saw 'cancelled'. */
  cancelled: string[];
  close(): void;
}

/**
 * A stock grpc-js server of Echo. Unary: `fail` answers NOT_FOUND, `hang` never answers (until
 * cancelled), anything else echoes. ServerStream: `count` messages of `data`; `endless` streams with
 * backpressure until cancelled. ClientStream: the count and SHA-256 (text) of all data. Bidi: echoes each.
 */
export async function startEchoServer(): Promise<EchoServer> {
  const cancelled: string[] = [];
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });
  const watch = (call: grpc.ServerUnaryCall<Msg, Msg> | grpc.ServerWritableStream<Msg, Msg>): void => {
    call.on('cancelled', () => cancelled.push(call.request.text ?? ''));
  };
  server.addService(ECHO_SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      watch(call);
      if (call.request.text === 'fail') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      else if (call.request.text !== 'hang') cb(null, { text: call.request.text, data: call.request.data });
    },
    serverStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      watch(call);
      const { count = 0, data, text } = call.request;
      let sent = 0;
      const pump = (): void => {
        while (!call.cancelled && (text === 'endless' || sent < count)) {
          sent++;
          if (!call.write({ data, count: sent })) return void call.once('drain', pump);
        }
        if (!call.cancelled) call.end();
      };
      pump();
    },
    clientStream: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const parts: Buffer[] = [];
      call.on('data', (m: Msg) => parts.push(m.data ?? Buffer.alloc(0)));
      call.on('end', () => cb(null, { count: parts.length, text: sha256(parts) }));
    },
    bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      call.on('data', (m: Msg) => call.write(m));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port, cancelled, close: () => server.forceShutdown() };
}

/** Longest a probe of the public port waits for an HTTP/2 SETTINGS frame. */
const H2C_PROBE_MS = 3000;

/**
 * True when `port` answers the HTTP/2 connection preface (h2c with prior knowledge) with SETTINGS; false
 * when it closes, errors or stays silent for H2C_PROBE_MS.
 */
export function speaksH2c(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), H2C_PROBE_MS);
    session.once('remoteSettings', () => done(true));
    session.once('error', () => done(false));
    session.once('close', () => done(false));
  });
}
