import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { FrameTooLargeError, ProtocolError } from '../errors.js';
import { encodeDataChunk, isPlainData, readDataChunk } from './data-chunk.js';
import { ChunkKind, EXCHANGE_KIND_NAMES, isFolded, type HTTPChunk } from './http-chunk.js';
import { StrictReader } from './strict-reader.js';

/** Largest DATA payload a sender puts in one chunk; bigger reads are split. */
export const MAX_CHUNK_DATA_BYTES = 256 * 1024;
/** Largest encoded frame a decoder accepts: one full DATA chunk plus room for headers. */
export const MAX_FRAME_BYTES = MAX_CHUNK_DATA_BYTES + 64 * 1024;
/**
 * Most header (or trailer) lines one chunk may carry. Above the edge's highest `max-header-count`
 * (10,000) plus the fields it adds, and Node's client keeps at most 2,000 of an origin's.
 */
export const MAX_HEADER_LINES = 16_384;

// The schema is the repository's proto file, parsed once; no code generation step.
const PROTO_TEXT = readFileSync(new URL('../../../proto/tunnel.proto', import.meta.url), 'utf8');
/** The parsed schema, for the other codecs of this folder. */
export const tunnelRoot = protobuf.parse(PROTO_TEXT, { keepCase: false }).root;
const root = tunnelRoot;
const HTTPChunkType = root.lookupType('jetty.tunnel.v1.HTTPChunk');
const AgentMessageType = root.lookupType('jetty.tunnel.v1.AgentMessage');
const EdgeMessageType = root.lookupType('jetty.tunnel.v1.EdgeMessage');

/** Hello.tunnel_kind: what a tunnel serves (proto/tunnel.proto TunnelKind). */
export enum TunnelKind {
  HTTP = 0,
  TCP = 1,
  UDP = 2,
}

/** The kind's name, as the CLI, URLs (tcp://) and the JSON codec spell it. */
export const TUNNEL_KIND_NAMES: Record<TunnelKind, 'http' | 'tcp' | 'udp'> = {
  [TunnelKind.HTTP]: 'http',
  [TunnelKind.TCP]: 'tcp',
  [TunnelKind.UDP]: 'udp',
};

/** Sent by the agent on Register (exactly one field set). */
export interface AgentMessage {
  hello?: { name: string; version: string; window?: number; resume?: string; resumeSecret?: string; tunnelKind?: TunnelKind; remotePort?: number; foldedChunks?: boolean } | null;
  pong?: { nonce: number } | null;
  drain?: { gracePeriodMs: number } | null;
}

/** Sent by the edge on Register (exactly one field set). */
export interface EdgeMessage {
  registered?: { name: string; url: string; sessionId: string; window?: number; pingIntervalMs?: number; resumeSecret?: string; port?: number; foldedChunks?: boolean } | null;
  open?: { headers: HTTPChunk } | null;
  cancel?: { exchangeId: string; code: number } | null;
  ping?: { nonce: number; rttUs?: number } | null;
  drain?: { gracePeriodMs: number } | null;
}

export interface DecodeOptions {
  /** Frames above this many bytes are rejected; default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Request targets as the edge sends them: `*` or origin-form in visible ASCII (Node's parser lets
// nothing else through, and the agent's http.request throws on spaces and control characters).
const TARGET = /^(?:\*|\/[\x21-\x7e]*)$/;
// Exchange ids (UUIDs from the edge) travel as gRPC metadata values: visible ASCII, bounded.
const EXCHANGE_ID = /^[\x21-\x7e]{0,128}$/;
// Field values: visible ASCII, obs-text, space and tab; never CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function checkSize(bytes: Uint8Array, options?: DecodeOptions): void {
  const max = options?.maxFrameBytes ?? MAX_FRAME_BYTES;
  if (bytes.byteLength > max) {
    throw new FrameTooLargeError(`frame of ${bytes.byteLength} bytes exceeds ${max}`);
  }
}

function decodeWith<T>(type: protobuf.Type, bytes: Uint8Array, what: string, options?: DecodeOptions): T {
  checkSize(bytes, options);
  try {
    return type.decode(new StrictReader(bytes)) as unknown as T;
  } catch (err) {
    throw new ProtocolError(`malformed ${what} frame`, { cause: err });
  }
}

/** Checks the rules the HTTP layers rely on; throws ProtocolError naming the broken one. */
export function validateChunk(chunk: HTTPChunk): HTTPChunk {
  // Whatever the kind: fields on a DATA or END chunk are never read, but they were decoded all the same.
  if ((chunk.headers?.length ?? 0) > MAX_HEADER_LINES) throw new ProtocolError(`more than ${MAX_HEADER_LINES} header lines`);
  switch (chunk.kind) {
    case ChunkKind.HEADERS:
      if (chunk.method) {
        if (!TOKEN.test(chunk.method)) throw new ProtocolError('invalid request method');
        if (!chunk.target || !TARGET.test(chunk.target)) throw new ProtocolError('request target must be origin-form, in visible ASCII');
        if (!EXCHANGE_ID.test(chunk.exchangeId ?? '')) throw new ProtocolError('invalid exchange id');
        // A kind this build does not know is a protocol error; a known one it does not serve is refused later, with RESET.
        if (chunk.exchangeKind !== undefined && !Object.hasOwn(EXCHANGE_KIND_NAMES, chunk.exchangeKind)) {
          throw new ProtocolError('unknown exchange kind');
        }
        // END may ride on a request head (a request without a body); its body never does.
        if ((chunk.data?.byteLength ?? 0) > 0) throw new ProtocolError('request HEADERS never carry data');
      } else if (!Number.isInteger(chunk.status) || chunk.status! < 100 || chunk.status! > 999) {
        throw new ProtocolError('HEADERS without method or valid status');
      } else if (isFolded(chunk)) {
        // A 1xx head is followed by another HEADERS, never by a body or END.
        if (chunk.status! < 200) throw new ProtocolError('informational HEADERS are never folded');
        if ((chunk.data?.byteLength ?? 0) > MAX_CHUNK_DATA_BYTES) throw new ProtocolError(`HEADERS with more than ${MAX_CHUNK_DATA_BYTES} bytes of data`);
      }
      validateFields(chunk);
      return chunk;
    case ChunkKind.TRAILERS:
      validateFields(chunk);
      return chunk;
    case ChunkKind.DATA:
      // protobufjs leaves a missing bytes field as a shared empty array (no byteLength): make it bytes.
      if (!(chunk.data instanceof Uint8Array)) chunk.data = new Uint8Array(0);
      // Senders split at MAX_CHUNK_DATA_BYTES, and every buffer bound counts chunks of at most that.
      if (chunk.data.byteLength > MAX_CHUNK_DATA_BYTES) throw new ProtocolError(`DATA of more than ${MAX_CHUNK_DATA_BYTES} bytes`);
      return chunk;
    case ChunkKind.END:
    case ChunkKind.RESET:
      if (chunk.end === true) throw new ProtocolError(`${ChunkKind[chunk.kind]} is never folded`);
      return chunk;
    default:
      throw new ProtocolError(`unknown chunk kind ${String(chunk.kind)}`);
  }
}

function validateFields(chunk: HTTPChunk): void {
  for (const h of chunk.headers ?? []) {
    // The peer's text is never quoted: these messages reach close reasons, logs and error pages.
    if (!TOKEN.test(h.name)) throw new ProtocolError('invalid header name');
    if (!FIELD_VALUE.test(h.value)) throw new ProtocolError('invalid header value');
  }
}

/** One HTTPChunk frame; DATA (the bulk of every transfer) is written by hand in one allocation (data-chunk.ts). */
export function encodeChunk(chunk: HTTPChunk): Uint8Array {
  if (isPlainData(chunk)) return encodeDataChunk(chunk);
  return HTTPChunkType.encode(chunk as unknown as protobuf.Message).finish();
}

/** Decodes and validates one HTTPChunk frame; DATA is read by hand, its payload a view of `bytes`. */
export function decodeChunk(bytes: Uint8Array, options?: DecodeOptions): HTTPChunk {
  checkSize(bytes, options);
  const data = readDataChunk(bytes);
  if (data) return validateChunk(data);
  return validateChunk(decodeWith<HTTPChunk>(HTTPChunkType, bytes, 'HTTPChunk', options));
}

export function encodeAgentMessage(msg: AgentMessage): Uint8Array {
  return AgentMessageType.encode(msg as unknown as protobuf.Message).finish();
}

/**
 * The member of a decoded oneof that protobuf semantics keep: the last one on the wire. protobufjs
 * keeps every member it saw (a Hello followed by a Pong decoded as both), and `oneof` names the last.
 */
function lastMember(decoded: object, oneof: string): Record<string, unknown> {
  const raw = decoded as Record<string, unknown>;
  const member = raw[oneof];
  return typeof member === 'string' ? { [member]: raw[member] } : {};
}

/** A decoded AgentMessage (from protobufjs) reduced to its one member; ProtocolError when it has none. */
export function agentMessageFrom(decoded: object): AgentMessage {
  const msg = lastMember(decoded, 'msg') as AgentMessage;
  if (!msg.hello && !msg.pong && !msg.drain) throw new ProtocolError('empty AgentMessage');
  const hello = msg.hello;
  if (hello) {
    if (hello.tunnelKind !== undefined && !Object.hasOwn(TUNNEL_KIND_NAMES, hello.tunnelKind)) throw new ProtocolError('unknown tunnel kind');
    if ((hello.remotePort ?? 0) > 65_535) throw new ProtocolError('remote port above 65535');
  }
  return msg;
}

export function decodeAgentMessage(bytes: Uint8Array, options?: DecodeOptions): AgentMessage {
  return agentMessageFrom(decodeWith<object>(AgentMessageType, bytes, 'AgentMessage', options));
}

export function encodeEdgeMessage(msg: EdgeMessage): Uint8Array {
  return EdgeMessageType.encode(msg as unknown as protobuf.Message).finish();
}

/** A decoded EdgeMessage (from protobufjs) reduced to its one member and checked. */
export function edgeMessageFrom(decoded: object): EdgeMessage {
  const msg = lastMember(decoded, 'msg');
  const open = msg.open as { headers?: HTTPChunk } | undefined;
  if (open) {
    // The agent serves an Open as a request: anything but request HEADERS would reach its origin as `GET /`.
    if (open.headers?.kind !== ChunkKind.HEADERS || !open.headers.method) throw new ProtocolError('Open without request HEADERS');
    validateChunk(open.headers);
  }
  if (!msg.registered && !open && !msg.cancel && !msg.ping && !msg.drain) throw new ProtocolError('empty EdgeMessage');
  return msg as EdgeMessage;
}

export function decodeEdgeMessage(bytes: Uint8Array, options?: DecodeOptions): EdgeMessage {
  return edgeMessageFrom(decodeWith<object>(EdgeMessageType, bytes, 'EdgeMessage', options));
}
