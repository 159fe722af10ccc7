import { ClientRequest, IncomingMessage, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { Metadata } from '@grpc/grpc-js';
import fc from 'fast-check';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { flatFields } from '../../src/codec/http-fields.js';
import { MAX_CHUNK_DATA_BYTES, MAX_HEADER_LINES } from '../../src/codec/tunnel-codec.js';
import { BadRequestError, FrameTooLargeError, ProtocolError } from '../../src/errors.js';

/**
 * Shared pieces of the fuzz suites (test/fuzz): how many runs, the seed, the errors a decoder may
 * throw, and mutation-based generators that start from valid encodings and break them the way a
 * hostile or buggy peer would (bytes flipped, fields dropped, repeated or reordered, lengths lied
 * about, truncations, concatenations).
 */

/** Runs per decoder property: 50,000 in `npm test`; `npm run fuzz -- --runs N` sets JETTY_FUZZ_RUNS. */
export const FUZZ_RUNS = positiveInt(process.env.JETTY_FUZZ_RUNS) ?? 50_000;
/** Fixed seed, so a failure is reproducible; JETTY_FUZZ_SEED explores another part of the space. */
export const FUZZ_SEED = positiveInt(process.env.JETTY_FUZZ_SEED) ?? 20261126;
/** Per-test deadline of a fuzz suite: a minute per 50,000 runs. */
export const FUZZ_DEADLINE_MS = Math.max(60_000, Math.ceil(FUZZ_RUNS / 50_000) * 60_000);

/**
 * Checks `check` on FUZZ_RUNS values of `arb` from FUZZ_SEED; a failure reports the error and the
 * input. The event loop gets a turn every `yieldEvery` runs: objects released on a later tick (a
 * destroyed socket, a ClientRequest) would otherwise pile up until the last run.
 */
export async function fuzz<T>(arb: fc.Arbitrary<T>, check: (value: T) => void | Promise<void>, yieldEvery = 256): Promise<void> {
  let runs = 0;
  const property = fc.asyncProperty(arb, async (value) => {
    if (++runs % yieldEvery === 0) await new Promise(setImmediate);
    await check(value);
  });
  await fc.assert(property, { seed: FUZZ_SEED, numRuns: FUZZ_RUNS, includeErrorInReport: true });
}

function positiveInt(raw: string | undefined): number | undefined {
  const n = Number(raw);
  return raw && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The errors the project's decoders and parsers are allowed to throw on bad input. */
export function isProjectProtocolError(err: unknown): boolean {
  return err instanceof ProtocolError || err instanceof FrameTooLargeError || err instanceof BadRequestError;
}

/** Decoder outcomes of one property, to check that the generators reach past the first checks. */
export class Outcomes {
  accepted = 0;
  refused = 0;

  /** `decode()`'s value, or undefined when it threw one of the project's protocol errors. */
  run<T>(decode: () => T): T | undefined {
    try {
      const value = decode();
      this.accepted++;
      return value;
    } catch (err) {
      if (!isProjectProtocolError(err)) {
        const e = err as Error;
        throw new Error(`decoder threw ${e?.name ?? typeof err} instead of a protocol error: ${e?.message}\n${e?.stack ?? ''}`);
      }
      this.refused++;
      return undefined;
    }
  }

  /** Both outcomes must be common: a generator that only yields garbage tests only the first check. */
  assertMixed(minShare = 0.02): void {
    const total = this.accepted + this.refused;
    if (this.accepted < total * minShare || this.refused < total * minShare) {
      throw new Error(`generators are lopsided: ${this.accepted} accepted, ${this.refused} refused`);
    }
  }
}

// ---- protobuf wire format ----

/** One top-level field of a protobuf message, as byte offsets into the encoding. */
export interface WireField {
  start: number;
  end: number;
  field: number;
  wireType: number;
  /** Length-delimited fields: where the length varint starts (the value starts at `valueStart`). */
  lengthStart: number;
  valueStart: number;
}

function readVarint(b: Uint8Array, pos: number): { value: number; end: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= b.length) return undefined;
    const byte = b[pos + i];
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return { value, end: pos + i + 1 };
  }
  return undefined;
}

/** Encodes `value` (0 to 2^64 - 1) as a protobuf varint. */
export function varint(value: bigint | number): Uint8Array {
  let v = BigInt(value) & 0xffff_ffff_ffff_ffffn;
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return Uint8Array.from(out);
}

/** The top-level fields of `b`, or undefined when it is not a well-formed message. */
export function scanFields(b: Uint8Array): WireField[] | undefined {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < b.length) {
    const start = pos;
    const tag = readVarint(b, pos);
    if (!tag) return undefined;
    pos = tag.end;
    const wireType = tag.value % 8;
    let valueStart = pos;
    let end: number;
    if (wireType === 0) {
      const v = readVarint(b, pos);
      if (!v) return undefined;
      end = v.end;
    } else if (wireType === 1) end = pos + 8;
    else if (wireType === 5) end = pos + 4;
    else if (wireType === 2) {
      const len = readVarint(b, pos);
      if (!len) return undefined;
      valueStart = len.end;
      end = valueStart + len.value;
    } else return undefined;
    if (end > b.length) return undefined;
    fields.push({ start, end, field: Math.floor(tag.value / 8), wireType, lengthStart: pos, valueStart });
    pos = end;
  }
  return fields;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** One edit of an encoding. Positions and indices are taken modulo what is there. */
export type Mutation =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }
  | { op: 'append'; bytes: Uint8Array }
  | { op: 'drop-field'; index: number }
  | { op: 'repeat-field'; index: number; times: number }
  | { op: 'swap-fields'; a: number; b: number }
  | { op: 'lie-length'; index: number; length: bigint }
  | { op: 'retag'; index: number; field: number; wireType: number }
  | { op: 'set-varint'; index: number; value: bigint }
  | { op: 'nested'; index: number; mutations: Mutation[] };

/** Largest encoding a mutation makes: past every frame limit (MAX_WS_FRAME_BYTES is 437 KiB), no further. */
const MAX_MUTATED_BYTES = 1024 * 1024;

function pick<T>(items: readonly T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

/** `bytes` with `m` applied; a field edit on bytes that are no longer a message does nothing. */
export function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  const n = bytes.byteLength;
  switch (m.op) {
    case 'flip': {
      if (n === 0) return bytes;
      const out = Uint8Array.from(bytes);
      out[m.at % n] ^= m.xor || 1;
      return out;
    }
    case 'truncate':
      return bytes.subarray(0, n === 0 ? 0 : m.at % n);
    case 'insert': {
      const at = m.at % (n + 1);
      return concat(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
    }
    case 'delete': {
      const at = n === 0 ? 0 : m.at % n;
      return concat(bytes.subarray(0, at), bytes.subarray(at + m.length));
    }
    case 'append':
      return concat(bytes, m.bytes);
  }
  const fields = scanFields(bytes);
  if (!fields) return bytes;
  const whole = (f: WireField): Uint8Array => bytes.subarray(f.start, f.end);
  const rebuild = (parts: Uint8Array[]): Uint8Array => concat(...parts);
  switch (m.op) {
    case 'drop-field': {
      const f = pick(fields, m.index);
      return f ? concat(bytes.subarray(0, f.start), bytes.subarray(f.end)) : bytes;
    }
    case 'repeat-field': {
      const f = pick(fields, m.index);
      if (!f) return bytes;
      // Repeats of repeats (nested) would reach gigabytes: stop a little past every frame limit.
      const times = Math.min(m.times, Math.floor((MAX_MUTATED_BYTES - n) / (f.end - f.start)));
      return times > 0 ? rebuild([bytes.subarray(0, f.end), ...Array.from({ length: times }, () => whole(f)), bytes.subarray(f.end)]) : bytes;
    }
    case 'swap-fields': {
      const a = pick(fields, m.a);
      const b = pick(fields, m.b);
      if (!a || !b || a === b) return bytes;
      const parts = fields.map((f) => (f === a ? whole(b) : f === b ? whole(a) : whole(f)));
      return rebuild(parts);
    }
    case 'lie-length': {
      const f = pick(
        fields.filter((x) => x.wireType === 2),
        m.index,
      );
      return f ? concat(bytes.subarray(0, f.lengthStart), varint(m.length), bytes.subarray(f.valueStart)) : bytes;
    }
    case 'retag': {
      const f = pick(fields, m.index);
      return f ? concat(bytes.subarray(0, f.start), varint(m.field * 8 + m.wireType), bytes.subarray(f.lengthStart)) : bytes;
    }
    case 'set-varint': {
      const f = pick(
        fields.filter((x) => x.wireType === 0),
        m.index,
      );
      return f ? concat(bytes.subarray(0, f.valueStart), varint(m.value), bytes.subarray(f.end)) : bytes;
    }
    case 'nested': {
      const f = pick(
        fields.filter((x) => x.wireType === 2),
        m.index,
      );
      if (!f) return bytes;
      const inner = m.mutations.reduce(mutate, bytes.subarray(f.valueStart, f.end));
      return concat(bytes.subarray(0, f.lengthStart), varint(inner.byteLength), inner, bytes.subarray(f.end));
    }
  }
}

/** Lengths a liar would claim: near the truth, near the limits, and far beyond them (2 GiB, 2^64 - 1). */
const lieArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 300n }),
  fc.constantFrom(0x7fff_ffffn, 0x8000_0000n, 0xffff_ffffn, 0x1_0000_0000n, 1n << 35n, 0xffff_ffff_ffff_ffffn),
  fc.constantFrom(256n * 1024n, 256n * 1024n + 1n, 320n * 1024n, 320n * 1024n + 1n, 436n * 1024n),
);
/** Varint values: small, enum-ish, status-ish, and the edges of 32 and 64 bits (negative int32s are 10 bytes). */
const varintValueArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 8n }),
  fc.bigInt({ min: 0n, max: 1100n }),
  fc.constantFrom(0x7fff_ffffn, 0x8000_0000n, 0xffff_ffffn, 0x1_0000_0000n, 0xffff_ffff_ffff_ffffn, 1n << 53n),
);
const smallBytesArb = fc.uint8Array({ minLength: 1, maxLength: 8 });

function mutationArb(depth: number): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: 1 << 20 });
  const index = fc.nat({ max: 64 });
  const flat: Array<fc.WeightedArbitrary<Mutation>> = [
    { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at, xor: fc.integer({ min: 1, max: 255 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('insert' as const), at, bytes: smallBytesArb }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('append' as const), bytes: smallBytesArb }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('drop-field' as const), index }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('repeat-field' as const),
        index,
        // Mostly a few repeats; now and then enough to pass any per-message count limit.
        times: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constant(17_000) }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('swap-fields' as const), a: index, b: index }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('lie-length' as const), index, length: lieArb }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant('retag' as const), index, field: fc.integer({ min: 0, max: 12 }), wireType: fc.integer({ min: 0, max: 7 }) }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('set-varint' as const), index, value: varintValueArb }) },
  ];
  if (depth === 0) return fc.oneof(...flat);
  return fc.oneof(...flat, {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('nested' as const), index, mutations: fc.array(mutationArb(depth - 1), { minLength: 1, maxLength: 3 }) }),
  });
}

/** Edits reaching three levels down (WsFrame → HTTPChunk → Header; EdgeMessage → Open → HTTPChunk → Header). */
export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(mutationArb(3), { minLength: 1, maxLength: 4 });

/**
 * Inputs for a protobuf decoder, built from `valid` encodings: mutated ones (most), concatenations
 * of two valid ones (a mutated one after a valid one), the valid ones themselves, and random bytes.
 * Buffers, as both transports deliver them (protobufjs decodes strings differently from a Buffer).
 */
export function protobufInputArb(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  const bytes: fc.Arbitrary<Uint8Array> = fc.oneof(
    { weight: 12, arbitrary: fc.tuple(valid, mutationsArb).map(([bytes, ms]) => ms.reduce(mutate, bytes)) },
    { weight: 2, arbitrary: fc.tuple(valid, valid, mutationsArb).map(([a, b, ms]) => concat(a, ms.reduce(mutate, b))) },
    { weight: 2, arbitrary: valid },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  );
  return bytes.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

// ---- text ----

/** Strings a peer might send where a name or a short text is expected. */
export const hostileStringArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '__proto__',
      'constructor',
      'toString',
      'hasOwnProperty',
      'headers',
      'data',
      'hello',
      'credit',
      'a\r\nInjected: 1',
      '\u0000',
      '\u007f',
      '\ud800',
      'é'.repeat(100),
      'x'.repeat(300),
      // Long enough to break anything that quotes it into a header or a close reason.
      'é'.repeat(60_000),
      '/a b',
      '/\u0100',
      '*',
      'http://evil.example/',
    ),
  },
);

// ---- JSON frames ----

/** Values a JSON peer might put in any field. */
const jsonValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: hostileStringArb },
  { weight: 3, arbitrary: fc.constantFrom(-1, 0, 0.5, 1, 3, 200, 262_144, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 1e300, -0, null, true, [], {}) },
  { weight: 1, arbitrary: fc.array(fc.tuple(hostileStringArb, hostileStringArb), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 64 }) },
);
const keyArb = fc.oneof(
  fc.constantFrom('stream', 'type', 'data', 'headers', 'status', 'method', 'target', 'exchangeId', 'code', 'reason', 'bytes', 'name', 'window', 'nonce', 'gracePeriodMs'),
  hostileStringArb,
);
const typeArb = fc.oneof(fc.constantFrom('headers', 'data', 'trailers', 'end', 'reset', 'credit', 'hello', 'leave', 'pong', 'registered', 'ping', 'cancel', 'drain'), hostileStringArb);

export type JsonMutation = { op: 'drop'; index: number } | { op: 'set'; key: string; value: unknown } | { op: 'type'; type: string };
export const jsonMutationArb: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), index: fc.nat({ max: 16 }) }),
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: jsonValueArb }),
  fc.record({ op: fc.constant('type' as const), type: typeArb }),
);

/** `text` (one JSON object) with `ms` applied. */
export function mutateJson(text: string, ms: JsonMutation[]): string {
  const obj = JSON.parse(text) as Record<string, unknown>;
  for (const m of ms) {
    const keys = Object.keys(obj);
    if (m.op === 'drop' && keys.length > 0) delete obj[keys[m.index % keys.length]];
    else if (m.op === 'set') obj[m.key] = m.value;
    else if (m.op === 'type') obj.type = m.type;
  }
  return JSON.stringify(obj);
}

/**
 * Inputs for the JSON codec, built from `valid` frames (JSON text): fields dropped or set to values
 * of any type, the type renamed (most), text-level damage, two frames in one message, the valid
 * frames themselves, random JSON and random text.
 */
export function jsonFrameInputArb(validJsonArb: fc.Arbitrary<string>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.tuple(validJsonArb, fc.array(jsonMutationArb, { minLength: 1, maxLength: 4 })).map(([t, ms]) => Buffer.from(mutateJson(t, ms))) },
    // Text-level damage: flipped or cut bytes, two frames in one message.
    { weight: 4, arbitrary: fc.tuple(validJsonArb, mutationsArb).map(([t, ms]) => Buffer.from(ms.reduce(mutate, Buffer.from(t)))) },
    { weight: 1, arbitrary: fc.tuple(validJsonArb, validJsonArb).map(([a, b]) => Buffer.from(a + b)) },
    { weight: 2, arbitrary: validJsonArb.map((t) => Buffer.from(t)) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }).map((t) => Buffer.from(t)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((t) => Buffer.from(t)) },
  );
}

// ---- what a decoded value may hold ----

/**
 * Characters and bytes a decoded value holds (own fields only: protobufjs keeps defaults on the
 * prototype). A decoder must never hand out more than it was given.
 */
export function footprint(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + footprint(v), 0);
  if (value && typeof value === 'object') return Object.values(value).reduce((n: number, v) => n + footprint(v), 0);
  return 0;
}

/**
 * A canonical form for comparing decoded values across codecs: proto3 defaults ('' , 0, false,
 * null, empty lists) dropped, keys sorted, bytes as hex.
 */
export function canonical(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.byteLength === 0 ? undefined : Buffer.from(value).toString('hex');
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(canonical);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = canonical((value as Record<string, unknown>)[key]);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }
  return value === '' || value === 0 || value === false || value === null ? undefined : value;
}

/**
 * Throws unless the layers behind a decoder take `chunk` as it is: Node's HTTP client for a request
 * head (method, target, fields) and gRPC metadata for its exchange id (the agent opens ForwardHTTP
 * with it), Node's HTTP server for a response head, Node's field checks for trailers.
 */
export function assertHttpUsable(chunk: HTTPChunk): void {
  if (chunk.kind === ChunkKind.TRAILERS) {
    for (const h of chunk.headers ?? []) {
      validateHeaderName(h.name);
      validateHeaderValue(h.name, h.value);
    }
    return;
  }
  if (chunk.kind !== ChunkKind.HEADERS) return;
  if (chunk.method) {
    new Metadata().set('jetty-exchange', chunk.exchangeId ?? '');
    const socket = new Duplex({ read() {}, write: (_c, _e, done) => done() });
    const req = new ClientRequest({ method: chunk.method, path: chunk.target, headers: flatFields(chunk.headers), setHost: false, createConnection: () => socket as Socket });
    req.on('error', () => undefined);
    req.destroy();
    socket.destroy();
    return;
  }
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  res.writeHead(chunk.status!, flatFields(chunk.headers));
}

/** Checks every decoded HTTPChunk must pass, wherever it was carried. */
export function assertSaneChunk(chunk: HTTPChunk): void {
  if (ChunkKind[chunk.kind] === undefined) throw new Error(`decoded chunk of kind ${chunk.kind}`);
  if ((chunk.data?.byteLength ?? 0) > MAX_CHUNK_DATA_BYTES) throw new Error(`decoded DATA of ${chunk.data?.byteLength} bytes`);
  if ((chunk.headers?.length ?? 0) > MAX_HEADER_LINES) throw new Error(`decoded ${chunk.headers?.length} header lines`);
  assertHttpUsable(chunk);
}
