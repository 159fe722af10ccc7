/**
 * HTTPChunk: the unit every transport carries (proto/tunnel.proto, jetty.tunnel.v1.HTTPChunk).
 * The same object shape is used in memory and handed to protobufjs, so no chunk is converted on the
 * data path.
 */

/** HTTPChunk.Kind on the wire. */
export enum ChunkKind {
  HEADERS = 1,
  DATA = 2,
  TRAILERS = 3,
  END = 4,
  RESET = 5,
}

/** ResetCode on the wire. */
export enum ResetCode {
  UNSPECIFIED = 0,
  CANCEL = 1,
  ORIGIN_ERROR = 2,
  PROTOCOL_ERROR = 3,
  INTERNAL = 4,
  /** Edge to edge: the owner does not hold the tunnel under the forwarded epoch (proto/tunnel.proto). */
  MISDIRECTED = 5,
  /** Edge to edge: the owner takes no exchange for the tunnel now (draining, agent at its cap). */
  UNAVAILABLE = 6,
}

/** ExchangeKind on the wire: what an exchange carries, fixed by its request HEADERS (DESIGN.md §6.1). */
export enum ExchangeKind {
  HTTP = 0,
  STREAM = 1,
  DATAGRAM = 2,
}

/** The kind's name, as the JSON codec and the logs spell it. */
export const EXCHANGE_KIND_NAMES: Record<ExchangeKind, string> = {
  [ExchangeKind.HTTP]: 'http',
  [ExchangeKind.STREAM]: 'stream',
  [ExchangeKind.DATAGRAM]: 'datagram',
};

/** The kind of the exchange `head` opens: a head without the field opens an `http` one. */
export function exchangeKindOf(head: HTTPChunk): ExchangeKind {
  return head.exchangeKind ?? ExchangeKind.HTTP;
}

/** One header line; repeats are kept as separate entries, in order. */
export interface Header {
  name: string;
  value: string;
}

export interface HTTPChunk {
  kind: ChunkKind;
  /** Request HEADERS: exchange and request id. */
  exchangeId?: string;
  /** Request HEADERS. */
  method?: string;
  /** Request HEADERS: origin-form target. */
  target?: string;
  /** Response HEADERS. */
  status?: number;
  /** HEADERS and TRAILERS. */
  headers?: Header[];
  /** DATA. */
  data?: Uint8Array;
  /** RESET. */
  code?: ResetCode;
  reason?: string;
  /** gRPC ForwardHTTP: the exchange's number on its stream (see proto/tunnel.proto). */
  seq?: number;
  /** Request HEADERS: the kind of exchange it opens; absent = HTTP. */
  exchangeKind?: ExchangeKind;
  /**
   * Folded chunks (proto/tunnel.proto `end`): an END follows this response HEADERS, DATA or TRAILERS
   * at once. A producer sets it on its last chunk; an exchange's sink sends it folded only to a peer
   * that reads folded chunks and unfolds it for any other.
   */
  end?: boolean;
}

/** The END chunk; shared because it carries no state. */
export const END_CHUNK: HTTPChunk = Object.freeze({ kind: ChunkKind.END }) as HTTPChunk;

export function dataChunk(data: Uint8Array): HTTPChunk {
  return { kind: ChunkKind.DATA, data };
}

export function resetChunk(code: ResetCode, reason: string): HTTPChunk {
  return { kind: ChunkKind.RESET, code, reason };
}

/**
 * Whether `chunk` stands for more than one: END folded in (`end`), or a response HEADERS carrying the
 * first DATA of its body. (protobufjs decodes an absent bytes field as an empty array without a
 * byteLength: that is no data.)
 */
export function isFolded(chunk: HTTPChunk): boolean {
  return chunk.end === true || (chunk.kind === ChunkKind.HEADERS && (chunk.data?.byteLength ?? 0) > 0);
}

/** The chunks a folded chunk stands for, in order: the chunk itself (HEADERS without data), DATA, END. */
export function unfold(chunk: HTTPChunk): HTTPChunk[] {
  const { end, data, ...rest } = chunk;
  const parts: HTTPChunk[] = [];
  if (chunk.kind === ChunkKind.HEADERS) {
    parts.push(rest);
    if (data && data.byteLength > 0) parts.push(dataChunk(data));
  } else {
    parts.push(chunk.kind === ChunkKind.DATA ? { ...rest, data } : rest);
  }
  if (end) parts.push(END_CHUNK);
  return parts;
}
