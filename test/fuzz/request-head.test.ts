import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { HOP_BY_HOP_FIELDS } from '../../src/codec/http-fields.js';
import { decodeChunk, encodeChunk } from '../../src/codec/tunnel-codec.js';
import { DEFAULT_LIMITS } from '../../src/edge/limits.js';
import { parseAuthority, requestHead, singleHost, tunnelName } from '../../src/edge/request-head.js';
import { assertSaneChunk, canonical, fuzz, FUZZ_DEADLINE_MS, hostileStringArb, isProjectProtocolError, mutate, type Mutation } from '../helpers/fuzz.js';
import { suite } from '../helpers/suite.js';

/**
 * The public request head parser (src/edge/request-head.ts) behind Node's own HTTP parser, set up as
 * the edge sets it up: mutated request heads go through a real http.Server, and every request Node
 * lets through is routed and turned into request HEADERS as the router does. Properties: only
 * BadRequestError is thrown; the HEADERS an agent receives pass its codec and Node's HTTP client,
 * carry no hop-by-hop field and the edge's forwarding fields exactly once, and are bounded by what
 * came in; a valid request on a fresh connection afterwards is served as ever.
 */
const test = suite('fuzz/request-head', {}, FUZZ_DEADLINE_MS);

const DOMAIN = 'localhost';
const PEER = '203.0.113.7';
const EDGE_FIELDS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'];

interface Seen {
  /** Requests Node's parser let through ('request', 'checkContinue' and 'upgrade' events). */
  requests: number;
  name?: string;
  head?: HTTPChunk;
  failure?: unknown;
}

let seen: Seen = { requests: 0 };
let trusted = false;

/** What the router and the upgrade handler of the edge do with a parsed request head. */
function route(req: IncomingMessage): void {
  seen.requests++;
  try {
    const authority = parseAuthority(singleHost(req));
    const name = tunnelName(authority.host, DOMAIN);
    seen.name = name;
    if (name !== undefined) seen.head = requestHead(req, authority, randomUUID(), { requestId: 'edge-id', trusted });
  } catch (err) {
    if (!isProjectProtocolError(err)) seen.failure = err;
  }
}

const server = createServer({ maxHeaderSize: DEFAULT_LIMITS.maxHeaderBytes }, route);
server.on('checkContinue', route);
server.on('upgrade', (req: IncomingMessage) => {
  seen.requests++;
  try {
    tunnelName(req.headers.host ?? '', DOMAIN);
  } catch (err) {
    seen.failure = err;
  }
});
server.on('clientError', (_err, socket: Duplex) => socket.destroy());

/**
 * Feeds `bytes` to the server as one new connection and returns what the handlers saw. Node parses
 * synchronously once the stream has been read from (`read(0)`), so no event loop turn is needed.
 */
function feed(bytes: Buffer, asTrusted = false): Seen {
  seen = { requests: 0 };
  trusted = asTrusted;
  const socket = new Duplex({ read() {}, write: (_chunk, _enc, done) => done() });
  Object.assign(socket, { remoteAddress: PEER });
  server.emit('connection', socket);
  socket.read(0);
  socket.push(bytes);
  socket.destroy();
  return seen;
}

const VALID = Buffer.from('GET /ok?x=1 HTTP/1.1\r\nHost: demo.localhost:8080\r\nAccept: */*\r\n\r\n');

// ---- generators ----

const hostArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'demo.localhost',
      'demo.localhost:8080',
      'Demo.LocalHost.',
      'localhost',
      '127.0.0.1:8080',
      '[::1]:8080',
      'demo.localhost:',
      'demo.localhost:@evil.example',
      'a.b.localhost',
      '.localhost',
      'demo..localhost',
      '[demo.localhost]',
      'demo.localhost:8080:9090',
    ),
  },
  { weight: 5, arbitrary: fc.stringMatching(/^[a-zA-Z0-9-]{1,16}\.localhost\.?(:[0-9]{0,6})?$/) },
  { weight: 1, arbitrary: hostileStringArb },
);
const pathArb = fc.stringMatching(/^\/[a-zA-Z0-9/?=&%._~!$'()*+,;:@-]{0,24}$/);
const targetArb = fc.oneof(
  { weight: 5, arbitrary: pathArb },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('http', 'HTTP', 'https'), hostArb, pathArb).map(([s, h, p]) => `${s}://${h}${p}`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '*',
      '//evil.example/',
      'http://user:pass@demo.localhost/',
      'http://demo.localhost:99999/',
      'http://demo.localhost\\@evil.example/',
      'http://demo.localhost',
      'demo.localhost:80',
      'ftp://demo.localhost/',
      '/%00',
    ),
  },
);
const fieldArb: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/), fc.stringMatching(/^[\x20-\x7e\t]{0,24}$/)) },
  {
    weight: 4,
    arbitrary: fc.constantFrom<[string, string]>(
      ['Connection', 'keep-alive, X-Secret'],
      ['Connection', 'close'],
      ['X-Secret', 's'],
      ['Transfer-Encoding', 'chunked'],
      ['Content-Length', '0'],
      ['Content-Length', '5'],
      ['TE', 'trailers'],
      ['Upgrade', 'websocket'],
      ['Keep-Alive', 'timeout=5'],
      ['Proxy-Connection', 'keep-alive'],
      ['Proxy-Authorization', 'Basic x'],
      ['X-Forwarded-For', '1.2.3.4'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Host', 'evil.example'],
      ['Forwarded', 'for=1.2.3.4'],
      ['X-Request-Id', 'spoofed'],
      ['Host', 'other.localhost'],
      ['Expect', '100-continue'],
      ['Obs', 'caf\xe9'],
    ),
  },
);
const methodArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH') },
  { weight: 1, arbitrary: fc.constantFrom('CONNECT', 'M-SEARCH', 'PROPFIND', 'get', 'FOO', '') },
);

interface RequestSpec {
  method: string;
  target: string;
  host: string | null;
  fields: Array<[string, string]>;
}

const requestArb: fc.Arbitrary<RequestSpec> = fc
  .record({
    method: methodArb,
    target: targetArb,
    host: fc.option(hostArb, { freq: 8, nil: null }),
    fields: fc.array(fieldArb, { maxLength: 8 }),
    // Absolute-form naming the Host's own authority, which the edge accepts and reduces.
    sameAuthority: fc.option(fc.constantFrom('http', 'HTTP', 'https'), { freq: 4 }),
  })
  .map(({ sameAuthority, ...r }) => (sameAuthority && r.host !== null && r.target.startsWith('/') ? { ...r, target: `${sameAuthority}://${r.host}${r.target}` } : r));

function serialise(r: RequestSpec): Buffer {
  const lines = [`${r.method} ${r.target} HTTP/1.1`];
  if (r.host !== null) lines.push(`Host: ${r.host}`);
  for (const [name, value] of r.fields) lines.push(`${name}: ${value}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Edits of a request head as text: bytes a smuggler would slip in, and lines dropped, doubled, moved or repeated. */
type LineMutation = { op: 'insert-text'; at: number; text: string } | { op: 'line'; action: 'drop' | 'double' | 'swap' | 'flood'; a: number; b: number; times: number };

const lineMutationArb: fc.Arbitrary<LineMutation> = fc.oneof(
  fc.record({
    op: fc.constant('insert-text' as const),
    at: fc.nat({ max: 1 << 16 }),
    text: fc.constantFrom(':', ' ', '\r\n', '\n', '\r', '\t', '@', '[', ']', ',', ';', '\\', '\x00', '\x7f', '\xe9', '\r\n ', 'Host: evil.localhost\r\n', 'Transfer-Encoding: chunked\r\n'),
  }),
  fc.record({
    op: fc.constant('line' as const),
    action: fc.constantFrom('drop' as const, 'double' as const, 'swap' as const, 'flood' as const),
    a: fc.nat({ max: 16 }),
    b: fc.nat({ max: 16 }),
    // Flooding passes Node's 2,000-field cap and the edge's max-header-count, now and then its byte limit.
    times: fc.constantFrom(2, 101, 2_100, 5_000),
  }),
);

/** A flood stops here: far past the 16 KiB head limit, without building megabytes out of a long line. */
const MAX_FLOOD_BYTES = 256 * 1024;

function mutateLines(head: Buffer, m: LineMutation): Buffer {
  if (m.op === 'insert-text') {
    const at = m.at % (head.length + 1);
    return Buffer.concat([head.subarray(0, at), Buffer.from(m.text, 'latin1'), head.subarray(at)]);
  }
  const lines = head.toString('latin1').split('\r\n');
  // Edit only the field lines: between the request line and the blank line that ends the head.
  const fields = lines.length - 3;
  if (fields <= 0) return head;
  const a = 1 + (m.a % fields);
  const b = 1 + (m.b % fields);
  if (m.action === 'drop') lines.splice(a, 1);
  else if (m.action === 'double') lines.splice(a, 0, lines[a]);
  else if (m.action === 'swap') [lines[a], lines[b]] = [lines[b], lines[a]];
  else lines.splice(a, 0, ...Array.from({ length: Math.min(m.times, Math.floor(MAX_FLOOD_BYTES / (lines[a].length + 2))) }, () => lines[a]));
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

const BYTE_OPS = new Set(['flip', 'truncate', 'insert', 'delete', 'append']);
const byteMutationArb = fc.record({
  op: fc.constantFrom('flip' as const, 'truncate' as const, 'delete' as const),
  at: fc.nat({ max: 1 << 16 }),
  xor: fc.integer({ min: 1, max: 255 }),
  length: fc.integer({ min: 1, max: 4 }),
}) as fc.Arbitrary<Mutation>;

const inputArb: fc.Arbitrary<[Buffer, boolean]> = fc.tuple(
  fc.oneof(
    { weight: 3, arbitrary: requestArb.map(serialise) },
    {
      weight: 8,
      arbitrary: fc
        .tuple(requestArb, fc.array(fc.oneof(lineMutationArb, byteMutationArb), { minLength: 1, maxLength: 3 }))
        .map(([r, ms]) =>
          ms.reduce<Buffer>((bytes, m) => ('op' in m && BYTE_OPS.has(m.op) ? Buffer.from(mutate(bytes, m as Mutation)) : mutateLines(bytes, m as LineMutation)), serialise(r)),
        ),
    },
    // Two requests in one read (pipelining), the second one mutated.
    { weight: 1, arbitrary: fc.tuple(requestArb, requestArb, lineMutationArb).map(([a, b, m]) => Buffer.concat([serialise(a), mutateLines(serialise(b), m)])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)) },
  ),
  fc.boolean(),
);

function assertSaneHead(head: HTTPChunk): void {
  assert.is(head.kind, ChunkKind.HEADERS);
  // The agent's codec takes it as it is, and Node's HTTP client (its origin request) too.
  assert.equal(canonical(decodeChunk(encodeChunk(head))), canonical(head));
  assertSaneChunk(head);
  const names = (head.headers ?? []).map((h) => h.name.toLowerCase());
  for (const n of names) assert.not.ok(HOP_BY_HOP_FIELDS.has(n), `hop-by-hop field ${n} forwarded`);
  for (const f of EDGE_FIELDS) assert.is(names.filter((n) => n === f).length, 1, `${f} once`);
  assert.is(head.headers!.find((h) => h.name.toLowerCase() === 'x-request-id')!.value, 'edge-id');
}

test('mutated request heads: only BadRequestError; what reaches an agent is valid, filtered and bounded; the next connection is served', async () => {
  let runs = 0;
  let parsed = 0;
  let routed = 0;
  // A turn of the event loop every run lets the destroyed sockets close: run after run in one turn,
  // every socket, parser and request stayed in memory until the end (a million runs ran out of heap).
  await fuzz(
    inputArb,
    ([bytes, asTrusted]) => {
      runs++;
      const got = feed(bytes, asTrusted);
      if (got.failure !== undefined) throw got.failure;
      if (got.requests > 0) parsed++;
      if (got.name !== undefined) {
        // DESIGN.md §1: NAME.DOMAIN lower-cased, port and one trailing dot removed. (Which characters a
        // name may hold is the Host validation of issue 8.7; a name no agent can register answers 404.)
        assert.match(got.name, /^[^.]+$/);
        assert.is(got.name, got.name.toLowerCase());
      }
      if (got.head) {
        routed++;
        assertSaneHead(got.head);
        assert.ok(got.head.headers!.length <= bytes.length / 4 + EDGE_FIELDS.length, 'no more fields out than in');
      }
      const after = feed(VALID);
      assert.is(after.name, 'demo');
      assert.is(after.head?.target, '/ok?x=1');
    },
    1,
  );
  // Node refuses most damaged heads; enough must get through for the properties to mean something.
  assert.ok(parsed > runs / 10 && routed > runs / 20, `${runs} runs: ${parsed} parsed, ${routed} routed`);
});

test.after(() => {
  server.close();
});

test.run();
