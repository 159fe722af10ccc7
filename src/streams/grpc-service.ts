import type { ServiceDefinition } from '@grpc/grpc-js';
import type { HTTPChunk } from '../codec/http-chunk.js';
import {
  decodeAgentMessage,
  decodeChunk,
  decodeEdgeMessage,
  encodeAgentMessage,
  encodeChunk,
  encodeEdgeMessage,
  MAX_FRAME_BYTES,
  type AgentMessage,
  type EdgeMessage,
} from '../codec/tunnel-codec.js';

/** Metadata key naming the session a ForwardHTTP stream belongs to. */
export const SESSION_METADATA_KEY = 'jetty-session';
/** Metadata key set when the agent opens a ForwardHTTP stream to answer an Open. */
export const EXCHANGE_METADATA_KEY = 'jetty-exchange';

/** HTTP/2 stream window on both ends; the memory bound of one stalled exchange. */
export const GRPC_STREAM_WINDOW_BYTES = 1024 * 1024;
/** HTTP/2 connection window on both ends (shared by all streams of one agent). */
export const GRPC_CONNECTION_WINDOW_BYTES = 32 * 1024 * 1024;
/**
 * HTTP/2 SETTINGS_MAX_FRAME_SIZE the edge advertises to an admitted agent: a DATA chunk then crosses
 * in one or two frames instead of sixteen of HTTP/2's default 16 KiB, and the edge handles one read
 * event per frame. A frame is only a unit of framing: flow control still bounds what is buffered.
 */
export const GRPC_MAX_FRAME_BYTES = 256 * 1024;
/** Keepalive ping interval on both ends. */
export const GRPC_KEEPALIVE_MS = 20_000;
/** How long a keepalive ping may go unanswered. */
export const GRPC_KEEPALIVE_TIMEOUT_MS = 10_000;
/** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS the edge advertises per agent connection. */
export const GRPC_MAX_CONCURRENT_STREAMS = 256;

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * jetty.tunnel.v1.TunnelAgent for grpc-js, with our codec as the serializer (protobufjs, validated
 * on decode). A decode error fails only the call it arrived on.
 */
export const TUNNEL_AGENT_SERVICE = {
  register: {
    path: '/jetty.tunnel.v1.TunnelAgent/Register',
    requestStream: true,
    responseStream: true,
    requestSerialize: (msg: AgentMessage) => toBuffer(encodeAgentMessage(msg)),
    requestDeserialize: (buf: Buffer) => decodeAgentMessage(buf),
    responseSerialize: (msg: EdgeMessage) => toBuffer(encodeEdgeMessage(msg)),
    responseDeserialize: (buf: Buffer) => decodeEdgeMessage(buf),
  },
  forwardHTTP: {
    path: '/jetty.tunnel.v1.TunnelAgent/ForwardHTTP',
    requestStream: true,
    responseStream: true,
    requestSerialize: (chunk: HTTPChunk) => toBuffer(encodeChunk(chunk)),
    requestDeserialize: (buf: Buffer) => decodeChunk(buf),
    responseSerialize: (chunk: HTTPChunk) => toBuffer(encodeChunk(chunk)),
    responseDeserialize: (buf: Buffer) => decodeChunk(buf),
  },
} satisfies ServiceDefinition;

/** grpc-js channel/server options shared by both ends. */
export const GRPC_COMMON_OPTIONS = {
  'grpc.max_receive_message_length': MAX_FRAME_BYTES,
  'grpc.max_send_message_length': MAX_FRAME_BYTES,
  'grpc.keepalive_time_ms': GRPC_KEEPALIVE_MS,
  'grpc.keepalive_timeout_ms': GRPC_KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/**
 * The agent's channel runs with channelz off: grpc-js then keeps no per-call and per-message statistics
 * (counters and a timestamp on every message sent and received, a call tracker per stream), which
 * nothing here reads. Not the edge's server: with channelz off, grpc-js 1.14's `forceShutdown()` no
 * longer sees the connections it has to destroy (it tracks them only for channelz), so an edge closing
 * with agents connected kept their sockets open (test/streams/grpc-service.test.ts).
 */
export const GRPC_CHANNEL_OPTIONS = {
  ...GRPC_COMMON_OPTIONS,
  'grpc.enable_channelz': 0,
} as const;
