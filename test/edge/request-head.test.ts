import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { HOP_BY_HOP_FIELDS, pairFields } from '../../src/codec/http-fields.js';
import { BadRequestError } from '../../src/errors.js';
import {
  formatAuthority,
  h2Authority,
  normaliseHost,
  originFormTarget,
  parseAuthority,
  requestHead,
  requestTrailers,
  singleHost,
  tunnelName,
} from '../../src/edge/request-head.js';

const test = suite('edge/request-head');

/** Fixed so a failure replays; the runs keep the suite under a second. */
const SEED = 8_0307;
const RUNS = 20_000;
const PEER = '203.0.113.9';

const authority = (value: string) => parseAuthority(value);

/** A public request as the router sees it (only the fields request-head reads). */
function fakeRequest(rawHeaders: string[], url = '/'): IncomingMessage {
  return { url, method: 'GET', rawHeaders, headers: {}, socket: { remoteAddress: PEER } } as unknown as IncomingMessage;
}

/** What the router does with a request head, in its order. */
function routeHead(req: IncomingMessage) {
  const a = parseAuthority(singleHost(req));
  return { name: tunnelName(a.host, 'localhost'), head: requestHead(req, a, 'x1', { requestId: 'r1', trusted: false }), a };
}

/** Runs `f`; anything thrown must be a BadRequestError (ERR_BAD_REQUEST), never a TypeError or the like. */
function onlyBadRequest<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof BadRequestError)) throw err;
    return undefined;
  }
}

test('Host is lower-cased, port and one trailing dot removed', () => {
  assert.is(normaliseHost('Demo.LocalHost:8080'), 'demo.localhost');
  assert.is(normaliseHost('demo.localhost.'), 'demo.localhost');
  assert.is(normaliseHost('[::1]:8080'), '[::1]');
  assert.equal(parseAuthority('Demo.localhost.:0080'), { host: 'demo.localhost', port: '80' });
  assert.equal(parseAuthority('demo.localhost:'), { host: 'demo.localhost', port: '' });
});

test('a Host whose port is not empty or digits, or whose name is not a host name, is ERR_BAD_REQUEST', () => {
  // Guards against `demo.localhost:@evil.example` being routed to demo and passed on raw.
  for (const bad of ['demo.localhost:@evil.example', 'demo.localhost:80:81', 'demo.localhost:x', 'demo.localhost:99999', 'a b', 'a..b', '.a',
    'user@demo.localhost', 'demo.localhost/x', '[::1', '[::1]x', '[fe80::1%25eth0]', '', ':80', 'demo.localhost:+80']) {
    assert.throws(() => parseAuthority(bad), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST', bad);
  }
});

test('only NAME.DOMAIN selects a tunnel; the domain, IPs and deeper names are the edge own', () => {
  assert.is(tunnelName('Demo.localhost:8080', 'localhost'), 'demo');
  assert.is(tunnelName('demo.localhost.', 'localhost'), 'demo');
  assert.is(tunnelName('localhost:8080', 'localhost'), undefined);
  assert.is(tunnelName('127.0.0.1:8080', 'localhost'), undefined);
  assert.is(tunnelName('a.b.localhost', 'localhost'), undefined);
  assert.is(tunnelName('demo.example.com', 'example.com'), 'demo');
});

test('absolute-form targets must match Host and are reduced to origin form', () => {
  assert.is(originFormTarget('/a?b', authority('x')), '/a?b');
  assert.is(originFormTarget('http://demo.localhost:8080/a?b=1', authority('demo.localhost:8080')), '/a?b=1');
  assert.throws(() => originFormTarget('http://other/a', authority('demo.localhost')), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST');
  assert.throws(() => originFormTarget('demo.localhost:443', authority('demo.localhost')), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST');
  assert.throws(() => originFormTarget('http://demo.localhost:@evil.example/', authority('demo.localhost')), (e: { code: string }) => e.code === 'ERR_BAD_REQUEST');
});

test('the origin gets the normalised Host; client-address fields from untrusted clients are dropped', () => {
  // Guards against X-Real-IP / X-Forwarded-Port|Ssl|Prefix from anyone reaching an origin that trusts them.
  const raw = ['Host', 'Demo.LOCALHOST.:08080', 'X-Real-IP', '6.6.6.6', 'X-Forwarded-Port', '1', 'X-Forwarded-Ssl', 'on',
    'X-Forwarded-Prefix', '/admin', 'True-Client-IP', '6.6.6.6', 'X-Kept', 'yes'];
  const { head } = routeHead(fakeRequest(raw));
  assert.equal(head.headers, [
    { name: 'Host', value: 'demo.localhost:8080' },
    { name: 'X-Kept', value: 'yes' },
    { name: 'X-Forwarded-For', value: PEER },
    { name: 'X-Forwarded-Proto', value: 'http' },
    { name: 'X-Forwarded-Host', value: 'demo.localhost:8080' },
    { name: 'X-Request-Id', value: 'r1' },
  ]);
  const trusted = requestHead(fakeRequest(raw), authority('demo.localhost'), 'x1', { requestId: 'r1', trusted: true });
  assert.ok(trusted.headers!.some((h) => h.name === 'X-Real-IP'));
});

test('an upgrade request keeps Connection: upgrade and its Upgrade field, and nothing else hop-by-hop', () => {
  const raw = ['Host', 'demo.localhost', 'Connection', 'Upgrade, x-hop', 'Upgrade', 'websocket', 'x-hop', 'no', 'Sec-WebSocket-Key', 'k'];
  const head = requestHead(fakeRequest(raw), authority('demo.localhost'), 'x1', { requestId: 'r1', trusted: false, upgrade: 'websocket' });
  const names = head.headers!.map((h) => `${h.name}: ${h.value}`);
  assert.ok(names.includes('Connection: upgrade'));
  assert.ok(names.includes('Upgrade: websocket'));
  assert.ok(names.includes('Sec-WebSocket-Key: k'));
  assert.not.ok(names.some((n) => n.startsWith('x-hop')));
  // Without the option the same head is stripped as any other.
  const plain = requestHead(fakeRequest(raw), authority('demo.localhost'), 'x1', { requestId: 'r1', trusted: false });
  assert.not.ok(plain.headers!.some((h) => /^(connection|upgrade)$/i.test(h.name)));
});

test('request trailers are filtered like the head: hop-by-hop, framing, routing and forwarding fields go', () => {
  const t = requestTrailers(pairFields(['X-Sum', '1', 'Host', 'evil', 'Content-Length', '9', 'X-Forwarded-For', '6.6.6.6', 'X-Real-IP', '6.6.6.6', 'Connection', 'x-a', 'x-a', '1']));
  assert.equal(t, [{ name: 'X-Sum', value: '1' }]);
});

// ---- properties ----

const HOST_CHARS = [...'abcXYZ019.-_:[]@%/\\ \t?#+~!*', '\u00e9', '\u0000'];
const hostish = fc.string({ unit: fc.constantFrom(...HOST_CHARS), maxLength: 40 });
const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/);
const validHost = fc.record({
  labels: fc.array(label, { minLength: 1, maxLength: 4 }),
  dot: fc.boolean(),
  port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
  zeros: fc.nat({ max: 2 }),
});
const show = (v: { labels: string[]; dot: boolean; port?: number; zeros: number }): string =>
  `${v.labels.join('.')}${v.dot ? '.' : ''}${v.port === undefined ? '' : `:${'0'.repeat(v.zeros)}${v.port}`}`;
/** A valid Host with one character inserted, replaced or removed. */
const mutatedHost = fc.tuple(validHost, fc.nat(), fc.constantFrom(...HOST_CHARS), fc.constantFrom('insert', 'replace', 'remove')).map(([v, at, ch, op]) => {
  const s = show(v);
  const i = at % (s.length + 1);
  if (op === 'insert') return s.slice(0, i) + ch + s.slice(i);
  if (op === 'replace') return s.slice(0, i) + ch + s.slice(i + 1);
  return s.slice(0, i) + s.slice(i + 1);
});

test('property: any Host value parses or throws ERR_BAD_REQUEST, nothing else', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), hostish, mutatedHost), (value) => {
      const a = onlyBadRequest(() => parseAuthority(value));
      // Whatever is accepted is stable: it parses again to itself, and has no userinfo, path or second port.
      if (a) assert.equal(parseAuthority(formatAuthority(a)), a);
      onlyBadRequest(() => tunnelName(value, 'localhost'));
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('property: a valid Host normalises to lower case, no trailing dot, a decimal port', () => {
  fc.assert(
    fc.property(validHost, (v) => {
      const a = parseAuthority(show(v));
      assert.is(a.host, v.labels.join('.').toLowerCase());
      assert.is(a.port, v.port === undefined ? '' : String(v.port));
      assert.is(tunnelName(`${v.labels[0]}.localhost${show(v).slice(v.labels.join('.').length)}`, 'localhost'), v.labels[0].toLowerCase());
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

const FIELD_NAMES = ['Host', 'Connection', 'Keep-Alive', 'TE', 'Transfer-Encoding', 'Upgrade', 'X-Forwarded-For', 'X-Forwarded-Host',
  'X-Forwarded-Port', 'X-Forwarded-Ssl', 'X-Forwarded-Prefix', 'X-Real-IP', 'Forwarded', 'X-Request-Id', 'Content-Length', 'X-A', 'x-b'];
const field = fc.tuple(
  fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.stringMatching(/^[a-zA-Z0-9-]{1,12}$/)),
  fc.oneof(hostish, mutatedHost, fc.constantFrom('close, x-a', 'keep-alive', 'x-b, X-Forwarded-Port', 'host, content-length')),
);

test('property: random and mutated request heads give a clean HEADERS chunk or ERR_BAD_REQUEST', () => {
  const EDGE_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);
  fc.assert(
    fc.property(fc.array(field, { maxLength: 12 }), fc.option(fc.oneof(validHost.map(show), mutatedHost), { nil: undefined }), fc.oneof(fc.constant('/'), hostish, fc.constant('http://demo.localhost/x')), (fields, host, url) => {
      const raw = fields.flat();
      if (host !== undefined) raw.unshift('Host', host);
      const routed = onlyBadRequest(() => routeHead(fakeRequest(raw, url)));
      if (!routed) return;
      const headers = routed.head.headers!;
      const connectionTokens = new Set<string>();
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i].toLowerCase() === 'connection') for (const t of raw[i + 1].split(',')) connectionTokens.add(t.trim().toLowerCase());
      }
      const hosts = headers.filter((h) => h.name.toLowerCase() === 'host');
      assert.equal(hosts.map((h) => h.value), [formatAuthority(routed.a)]);
      for (const h of headers) {
        const lower = h.name.toLowerCase();
        assert.not.ok(HOP_BY_HOP_FIELDS.has(lower) || (connectionTokens.has(lower) && lower !== 'host'), lower);
        if (lower.startsWith('x-forwarded-') || lower === 'x-real-ip' || lower === 'forwarded' || lower === 'x-request-id') {
          assert.ok(EDGE_SET.has(lower), `${lower} from an untrusted client was passed on`);
        }
      }
      assert.is(headers.find((h) => h.name === 'X-Forwarded-For')?.value, PEER);
    }),
    { seed: SEED, numRuns: RUNS / 4 },
  );
});

/** An HTTP/2 request as the compat layer gives it: pseudo-headers first in rawHeaders and in headers. */
function fakeH2Request(authorityValue: string | undefined, rest: string[]): IncomingMessage {
  const raw = [':method', 'GET', ':path', '/p', ':scheme', 'http', ...(authorityValue === undefined ? [] : [':authority', authorityValue]), ...rest];
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) headers[raw[i].toLowerCase()] = raw[i + 1];
  return { url: '/p', method: 'GET', httpVersionMajor: 2, rawHeaders: raw, headers, socket: { remoteAddress: PEER } } as unknown as IncomingMessage;
}

test('HTTP/2: :authority, else Host; both must name the same host and port, else ERR_BAD_REQUEST', () => {
  assert.equal(h2Authority(fakeH2Request('demo.localhost:8080', [])), { host: 'demo.localhost', port: '8080' });
  assert.equal(h2Authority(fakeH2Request(undefined, ['host', 'demo.localhost'])), { host: 'demo.localhost', port: '' });
  assert.equal(h2Authority(fakeH2Request('demo.localhost:8080', ['host', 'DEMO.localhost.:08080'])), { host: 'demo.localhost', port: '8080' });
  for (const [pseudo, host] of [
    ['demo.localhost', 'other.localhost'],
    ['demo.localhost:8080', 'demo.localhost:8081'],
    ['demo.localhost', 'demo.localhost:80'],
  ]) {
    assert.throws(() => h2Authority(fakeH2Request(pseudo, ['host', host])), (e: unknown) => e instanceof BadRequestError, `${pseudo} vs ${host}`);
  }
  assert.throws(() => h2Authority(fakeH2Request(undefined, [])), (e: unknown) => e instanceof BadRequestError);
  assert.throws(() => h2Authority(fakeH2Request('demo.localhost', ['host', 'demo.localhost', 'host', 'other.localhost'])), (e: unknown) => e instanceof BadRequestError);
});

test('HTTP/2: pseudo-headers never reach the origin and split Cookie fields become one line', () => {
  const req = fakeH2Request('demo.localhost', ['cookie', 'a=1', 'accept', '*/*', 'cookie', 'b=2', 'te', 'trailers']);
  const head = requestHead(req, h2Authority(req), 'x1', { requestId: 'r1', trusted: false });
  const names = head.headers!.map((h) => h.name.toLowerCase());
  assert.not.ok(names.some((n) => n.startsWith(':')), names.join(','));
  assert.equal(head.headers!.filter((h) => h.name.toLowerCase() === 'cookie'), [{ name: 'cookie', value: 'a=1; b=2' }]);
  assert.not.ok(names.includes('te'));
  assert.is(head.target, '/p');
});

test.run();
