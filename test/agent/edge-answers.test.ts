import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { checkDiscovery, checkRegistered } from '../../src/agent/edge-answers.js';

const test = suite('agent/edge-answers');
const edge = new URL('https://edge.example.com:8443');
const good = { version: 1, domain: 'tunnels.example.com', publicPort: 8443, transports: { grpc: { port: 8091 }, websocket: { path: '/_jetty/ws' } } };

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

test('discovery: a well-formed answer passes; unknown transports are ignored', () => {
  assert.equal(checkDiscovery({ ...good, transports: { ...good.transports, carrier: { pigeon: 1 } } }, edge), good);
});

test('discovery: a WebSocket path that leaves the edge, or malformed fields, are refused (ERR_PROTOCOL)', () => {
  for (const path of ['http://evil.example/_jetty/ws', '//evil.example/_jetty/ws', '/\\evil.example/_jetty/ws', 'wss://edge.example.com:8443/x', '_jetty/ws', '/a b', '/\x1b[2J', 7]) {
    assert.is(codeOf(() => checkDiscovery({ ...good, transports: { websocket: { path } } }, edge)), 'ERR_PROTOCOL', String(path));
  }
  for (const bad of [null, [], { ...good, version: 2 }, { ...good, domain: 'evil.example/x' }, { ...good, publicPort: 0 }, { ...good, publicPort: '80' }, { ...good, transports: { grpc: { port: 70000 } } }, { ...good, transports: null }]) {
    assert.is(codeOf(() => checkDiscovery(bad, edge)), 'ERR_PROTOCOL', JSON.stringify(bad));
  }
});

test('Registered: our name at NAME.DOMAIN only; sane ids, window and ping interval', () => {
  const r = { name: 'demo', url: 'https://demo.tunnels.example.com:8443', sessionId: 'a1b2-c3', resumeSecret: 'Zx_9-', window: 1 << 20, pingIntervalMs: 10_000 };
  const expected = { name: 'demo', domain: 'tunnels.example.com' };
  assert.is(codeOf(() => checkRegistered(r, expected)), 'ok');
  assert.is(codeOf(() => checkRegistered({ ...r, url: 'http://demo.tunnels.example.com/' }, expected)), 'ok');
  for (const bad of [
    { name: 'other' },
    { url: 'https://evil.example' },
    { url: 'https://demo.tunnels.example.com.evil.example' },
    { url: 'https://user:pw@demo.tunnels.example.com' },
    { url: 'https://demo.tunnels.example.com/path' },
    { url: 'javascript:alert(1)' },
    { url: 'https://demo.tunnels.example.com\x1b[2J' },
    { sessionId: '' },
    { sessionId: 'a\r\nb' },
    { resumeSecret: 'x'.repeat(200) },
    { window: 1 },
    { window: 2 ** 31 },
    { pingIntervalMs: 86_400_000 },
  ]) {
    assert.is(codeOf(() => checkRegistered({ ...r, ...bad }, expected)), 'ERR_PROTOCOL', JSON.stringify(bad));
  }
});

test.run();
