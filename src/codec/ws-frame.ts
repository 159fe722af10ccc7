import protobuf from 'protobufjs';
import { FrameTooLargeError, ProtocolError } from '../errors.js';
import { ChunkKind, EXCHANGE_KIND_NAMES, ExchangeKind, type Header, type HTTPChunk } from './http-chunk.js';
import { encodeWsDataFrame, isPlainData, readWsDataFrame } from './data-chunk.js';
import { StrictReader } from './strict-reader.js';
import { agentMessageFrom, edgeMessageFrom, MAX_FRAME_BYTES, TUNNEL_KIND_NAMES, TunnelKind, tunnelRoot, validateChunk, type AgentMessage, type EdgeMessage } from './tunnel-codec.js';

/** WebSocket subprotocol of binary protobuf WsFrames (the default). */
export const WS_PROTOCOL_PROTO = 'jetty.v1.proto';
/** WebSocket subprotocol of the seed's legacy JSON text frames (base64 bodies). */
export const WS_PROTOCOL_JSON = 'jetty.v1.json';
export const WS_PROTOCOLS = [WS_PROTOCOL_PROTO, WS_PROTOCOL_JSON] as const;
export type WsCodecName = (typeof WS_PROTOCOLS)[number];

/** Largest WebSocket message accepted: a full DATA chunk, base64-inflated, plus room for fields. */
export const MAX_WS_FRAME_BYTES = Math.ceil((MAX_FRAME_BYTES * 4) / 3) + 1024;

/** One WebSocket message. Stream 0 carries control; exchanges use odd ids opened by the edge. */
export type WsFrame =
  | { stream: number; chunk: HTTPChunk }
  | { stream: number; credit: number }
  | { stream: 0; agent: AgentMessage }
  | { stream: 0; edge: EdgeMessage };

const WsFrameType = tunnelRoot.lookupType('jetty.tunnel.v1.WsFrame');

function checkFrame(frame: Record<string, unknown>): WsFrame {
  const stream = frame.stream;
  if (typeof stream !== 'number' || !Number.isInteger(stream) || stream < 0 || stream > UINT32_MAX) throw new ProtocolError('frame without a valid stream id');
  if (frame.chunk) {
    if (stream === 0) throw new ProtocolError('exchange chunk on the control stream');
    validateChunk(frame.chunk as HTTPChunk);
  } else if (typeof frame.credit === 'number' && (frame.credit as number) > 0) {
    if (stream === 0) throw new ProtocolError('credit on the control stream');
  } else if (frame.agent || frame.edge) {
    if (stream !== 0) throw new ProtocolError('control message outside stream 0');
  } else {
    throw new ProtocolError('empty frame');
  }
  return frame as unknown as WsFrame;
}

export function encodeWsFrameProto(frame: WsFrame): Uint8Array {
  // DATA, the bulk of every transfer, is written by hand in one allocation (data-chunk.ts).
  if ('chunk' in frame && isPlainData(frame.chunk)) return encodeWsDataFrame(frame.stream, frame.chunk);
  return WsFrameType.encode(frame as unknown as protobuf.Message).finish();
}

export function decodeWsFrameProto(bytes: Uint8Array): WsFrame {
  if (bytes.byteLength > MAX_WS_FRAME_BYTES) throw new FrameTooLargeError(`frame of ${bytes.byteLength} bytes exceeds ${MAX_WS_FRAME_BYTES}`);
  const data = readWsDataFrame(bytes);
  if (data) return checkFrame(data);
  let decoded: protobuf.Message;
  try {
    decoded = WsFrameType.decode(new StrictReader(bytes));
  } catch (err) {
    throw new ProtocolError('malformed WsFrame', { cause: err });
  }
  // Read the oneof through its virtual field so proto3 defaults on the prototype do not count.
  const body = (decoded as unknown as { body?: string }).body;
  const raw = decoded as unknown as Record<string, unknown>;
  const frame: Record<string, unknown> = { stream: raw.stream };
  // Control messages get the checks the gRPC codec gives them: one member, and no Open (gRPC only).
  if (body === 'agent') frame.agent = agentMessageFrom(raw.agent as object);
  else if (body === 'edge') {
    const edge = edgeMessageFrom(raw.edge as object);
    if (edge.open) throw new ProtocolError('Open is not used on WebSocket');
    frame.edge = edge;
  } else if (body) frame[body] = raw[body];
  return checkFrame(frame);
}

// ---- legacy JSON frames: {"stream":1,"type":"data","data":"<base64>"} ----

const KIND_NAMES: Record<number, string> = {
  [ChunkKind.HEADERS]: 'headers',
  [ChunkKind.DATA]: 'data',
  [ChunkKind.TRAILERS]: 'trailers',
  [ChunkKind.END]: 'end',
  [ChunkKind.RESET]: 'reset',
};
const KINDS_BY_NAME: Record<string, ChunkKind> = Object.fromEntries(Object.entries(KIND_NAMES).map(([k, v]) => [v, Number(k)]));

const EXCHANGE_KINDS_BY_NAME: Record<string, ExchangeKind> = Object.fromEntries(
  Object.entries(EXCHANGE_KIND_NAMES).map(([k, v]) => [v, Number(k) as ExchangeKind]),
);

/** The optional `exchangeKind` of a JSON request head: absent = http; a name this build does not know is refused. */
function exchangeKind(v: unknown): ExchangeKind | undefined {
  if (v === undefined) return undefined;
  const kind = typeof v === 'string' && Object.hasOwn(EXCHANGE_KINDS_BY_NAME, v) ? EXCHANGE_KINDS_BY_NAME[v] : undefined;
  if (kind === undefined) throw new ProtocolError('unknown exchange kind');
  return kind;
}

const TUNNEL_KINDS_BY_NAME: Record<string, TunnelKind> = Object.fromEntries(Object.entries(TUNNEL_KIND_NAMES).map(([k, v]) => [v, Number(k) as TunnelKind]));

/** The optional `tunnelKind` of a JSON Hello: absent = http; a name this build does not know is refused. */
function tunnelKind(v: unknown): TunnelKind {
  if (v === undefined) return TunnelKind.HTTP;
  if (typeof v === 'string' && Object.hasOwn(TUNNEL_KINDS_BY_NAME, v)) return TUNNEL_KINDS_BY_NAME[v];
  throw new ProtocolError('unknown tunnel kind');
}

type Json = Record<string, unknown>;

const pairs = (headers: Header[] | undefined): string[][] => (headers ?? []).map((h) => [h.name, h.value]);

function unpair(value: unknown): Header[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ProtocolError('headers must be a list of [name, value] pairs');
  return value.map((p) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string') {
      throw new ProtocolError('headers must be a list of [name, value] pairs');
    }
    return { name: p[0], value: p[1] };
  });
}

// JSON escapes can spell a lone surrogate ("\ud800"), which UTF-8 (and so protobuf) cannot carry.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A string field, as well-formed Unicode: a lone surrogate becomes U+FFFD, as UTF-8 decoding makes it. */
function str(v: unknown, what: string): string {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new ProtocolError(`${what} must be a string`);
  return v.replace(LONE_SURROGATE, '\ufffd');
}

// Numbers are what the protobuf field they stand for can hold, so both subprotocols carry the same
// frames: a credit of 0.5, a window of 1e300 or a stream id of 2^53 is refused as on the wire.
const UINT32_MAX = 0xffff_ffff;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

function uint32(v: unknown, what: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw new ProtocolError(`${what} must be an integer from 0 to ${UINT32_MAX}`);
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new ProtocolError(`${what} must be true or false`);
  return v;
}

function base64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/** Enums (ResetCode) are int32 on the wire. */
function int32(v: unknown, what: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) throw new ProtocolError(`${what} must be a 32-bit integer`);
  return v;
}

export function encodeWsFrameJson(frame: WsFrame): string {
  const out: Json = { stream: frame.stream };
  if ('chunk' in frame) {
    const c = frame.chunk;
    out.type = KIND_NAMES[c.kind];
    if (c.kind === ChunkKind.HEADERS) {
      if (c.method) {
        Object.assign(out, { exchangeId: c.exchangeId, method: c.method, target: c.target });
        // Absent means http, so the seed's agents never see the field.
        if (c.exchangeKind) out.exchangeKind = EXCHANGE_KIND_NAMES[c.exchangeKind];
      }
      else out.status = c.status;
      out.headers = pairs(c.headers);
      // A folded response head carries its first DATA (proto/tunnel.proto `end`).
      if ((c.data?.byteLength ?? 0) > 0) out.data = base64(c.data!);
    } else if (c.kind === ChunkKind.TRAILERS) out.headers = pairs(c.headers);
    else if (c.kind === ChunkKind.DATA) out.data = base64(c.data!);
    else if (c.kind === ChunkKind.RESET) Object.assign(out, { code: c.code ?? 0, reason: c.reason ?? '' });
    // Only when set, so a peer that never reads folded chunks never sees the field.
    if (c.end) out.end = true;
  } else if ('credit' in frame) {
    Object.assign(out, { type: 'credit', bytes: frame.credit });
  } else if ('agent' in frame) {
    const m = frame.agent;
    if (m.hello) {
      Object.assign(out, { type: 'hello', ...m.hello });
      // By name, as exchangeKind; absent = http, so an edge of the seed sees the Hello it knows.
      if (m.hello.tunnelKind) out.tunnelKind = TUNNEL_KIND_NAMES[m.hello.tunnelKind];
      else delete out.tunnelKind;
    }
    else if (m.drain) Object.assign(out, { type: 'leave', gracePeriodMs: m.drain.gracePeriodMs });
    else Object.assign(out, { type: 'pong', nonce: m.pong!.nonce });
  } else {
    const m = frame.edge;
    if ('registered' in m && m.registered) Object.assign(out, { type: 'registered', ...m.registered });
    else if ('ping' in m && m.ping) Object.assign(out, { type: 'ping', nonce: m.ping.nonce, rttUs: m.ping.rttUs ?? 0 });
    else if ('cancel' in m && m.cancel) Object.assign(out, { type: 'cancel', ...m.cancel });
    else if (m.drain) Object.assign(out, { type: 'drain', gracePeriodMs: m.drain.gracePeriodMs });
    else throw new ProtocolError('Open is not used on WebSocket');
  }
  return JSON.stringify(out);
}

export function decodeWsFrameJson(text: string): WsFrame {
  if (text.length > MAX_WS_FRAME_BYTES) throw new FrameTooLargeError(`frame of ${text.length} bytes exceeds ${MAX_WS_FRAME_BYTES}`);
  let j: Json;
  try {
    j = JSON.parse(text) as Json;
  } catch (err) {
    throw new ProtocolError('malformed JSON frame', { cause: err });
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new ProtocolError('JSON frame must be an object');
  const stream = j.stream;
  const type = j.type;
  if (typeof type !== 'string') throw new ProtocolError('JSON frame without a type');
  const kind = KINDS_BY_NAME[type];
  let frame: Json;
  if (kind !== undefined) {
    const chunk: HTTPChunk = { kind };
    if (kind === ChunkKind.HEADERS) {
      if (j.method !== undefined) {
        chunk.exchangeId = str(j.exchangeId, 'exchangeId');
        chunk.method = str(j.method, 'method');
        chunk.target = str(j.target, 'target');
        const kind = exchangeKind(j.exchangeKind);
        if (kind !== undefined) chunk.exchangeKind = kind;
      } else chunk.status = uint32(j.status, 'status');
      chunk.headers = unpair(j.headers);
      if (j.data !== undefined) chunk.data = Buffer.from(str(j.data, 'data'), 'base64');
    } else if (kind === ChunkKind.TRAILERS) chunk.headers = unpair(j.headers);
    else if (kind === ChunkKind.DATA) chunk.data = Buffer.from(str(j.data, 'data'), 'base64');
    else if (kind === ChunkKind.RESET) {
      chunk.code = int32(j.code, 'code');
      chunk.reason = str(j.reason, 'reason');
    }
    if (j.end !== undefined) chunk.end = bool(j.end, 'end');
    frame = { stream, chunk };
  } else if (type === 'credit') frame = { stream, credit: uint32(j.bytes, 'bytes') };
  else if (type === 'hello') {
    const hello = { name: str(j.name, 'name'), version: str(j.version, 'version'), window: uint32(j.window, 'window'), resume: str(j.resume, 'resume') };
    const port = { tunnelKind: tunnelKind(j.tunnelKind), remotePort: uint32(j.remotePort, 'remotePort') };
    const folded = j.foldedChunks === undefined ? {} : { foldedChunks: bool(j.foldedChunks, 'foldedChunks') };
    frame = { stream, agent: { hello: { ...hello, resumeSecret: str(j.resumeSecret, 'resumeSecret'), ...port, ...folded } } };
  } else if (type === 'drain') frame = { stream, edge: { drain: { gracePeriodMs: uint32(j.gracePeriodMs, 'gracePeriodMs') } } };
  else if (type === 'leave') frame = { stream, agent: { drain: { gracePeriodMs: uint32(j.gracePeriodMs, 'gracePeriodMs') } } };
  else if (type === 'pong') frame = { stream, agent: { pong: { nonce: uint32(j.nonce, 'nonce') } } };
  else if (type === 'registered') {
    frame = {
      stream,
      edge: {
        registered: {
          name: str(j.name, 'name'),
          url: str(j.url, 'url'),
          sessionId: str(j.sessionId, 'sessionId'),
          window: uint32(j.window, 'window'),
          pingIntervalMs: uint32(j.pingIntervalMs, 'pingIntervalMs'),
          resumeSecret: str(j.resumeSecret, 'resumeSecret'),
          port: uint32(j.port, 'port'),
          foldedChunks: j.foldedChunks === undefined ? false : bool(j.foldedChunks, 'foldedChunks'),
        },
      },
    };
  } else if (type === 'ping') frame = { stream, edge: { ping: { nonce: uint32(j.nonce, 'nonce'), rttUs: uint32(j.rttUs, 'rttUs') } } };
  else if (type === 'cancel') frame = { stream, edge: { cancel: { exchangeId: str(j.exchangeId, 'exchangeId'), code: int32(j.code, 'code') } } };
  // The peer's text is never quoted back (it would reach a close reason and the logs).
  else throw new ProtocolError('unknown JSON frame type');
  return checkFrame(frame);
}

/** Encoder/decoder pair for one subprotocol. */
export interface WsCodec {
  readonly name: WsCodecName;
  readonly binary: boolean;
  encode(frame: WsFrame): Uint8Array | string;
  decode(data: Buffer, isBinary: boolean): WsFrame;
}

export const WS_CODECS: Record<WsCodecName, WsCodec> = {
  [WS_PROTOCOL_PROTO]: {
    name: WS_PROTOCOL_PROTO,
    binary: true,
    encode: encodeWsFrameProto,
    decode: (data, isBinary) => {
      if (!isBinary) throw new ProtocolError('text frame on the protobuf subprotocol');
      return decodeWsFrameProto(data);
    },
  },
  [WS_PROTOCOL_JSON]: {
    name: WS_PROTOCOL_JSON,
    binary: false,
    encode: encodeWsFrameJson,
    decode: (data, isBinary) => {
      if (isBinary) throw new ProtocolError('binary frame on the JSON subprotocol');
      return decodeWsFrameJson(data.toString('utf8'));
    },
  },
};
