import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { HTTPChunk } from '../../src/codec/http-chunk.js';
import { GRPC_CHANNEL_OPTIONS, GRPC_COMMON_OPTIONS, TUNNEL_AGENT_SERVICE } from '../../src/streams/grpc-service.js';

/** A TunnelAgent server and a client of it on loopback, for tests of ForwardHTTP calls. */
export interface GrpcLoopback {
  server: grpc.Server;
  client: grpc.Client & { forwardHTTP: (md?: grpc.Metadata) => grpc.ClientDuplexStream<HTTPChunk, HTTPChunk> };
  /** Every ForwardHTTP call the server received, in order. */
  serverCalls: Duplex[];
  close(): void;
}

/** Starts the pair; `clientOptions` are added to the agent's GRPC_CHANNEL_OPTIONS for the client channel. */
export async function grpcLoopback(clientOptions: grpc.ChannelOptions = {}): Promise<GrpcLoopback> {
  const serverCalls: Duplex[] = [];
  const server = new grpc.Server(GRPC_COMMON_OPTIONS);
  server.addService(TUNNEL_AGENT_SERVICE, {
    register: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    forwardHTTP: (call: grpc.ServerDuplexStream<HTTPChunk, HTTPChunk>) => void serverCalls.push(call as unknown as Duplex),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(TUNNEL_AGENT_SERVICE, 'TunnelAgent');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { ...GRPC_CHANNEL_OPTIONS, ...clientOptions }) as unknown as GrpcLoopback['client'];
  return {
    server,
    client,
    serverCalls,
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}
