import { request } from 'node:http';
import * as assert from 'uvu/assert';
import { DEMO_ECHO_VALUE_MAX_CHARS, DemoOrigin } from '../src/demo-origin.js';
import { suite } from './helpers/suite.js';

const test = suite<{ origin?: DemoOrigin }>('demo-origin');

test.after.each(async (ctx) => {
  await ctx.origin?.close();
  ctx.origin = undefined;
});

function post(port: number, path: string, headers: Record<string, string>, bodyBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let sent = 0; sent < bodyBytes; sent += chunk.length) req.write(chunk.subarray(0, Math.min(chunk.length, bodyBytes - sent)));
    req.end();
  });
}

test('answers with what reached it: request line, headers, the body counted (never held), escapes and long values made safe', async (ctx) => {
  const origin = (ctx.origin = await DemoOrigin.start({ port: 0 }));
  assert.is(origin.host, '127.0.0.1');
  const text = await post(origin.port, '/upload?x=1', { 'x-long': 'v'.repeat(1000), 'x-escape': 'a\x9b31mb' }, 3 * 1024 * 1024 + 5);
  assert.match(text, /^Hello from Jetty's demo origin/);
  assert.match(text, /^POST \/upload\?x=1 HTTP\/1\.1$/m);
  assert.match(text, /^Body: 3145733 bytes$/m);
  assert.match(text, new RegExp(`^x-long: v{${DEMO_ECHO_VALUE_MAX_CHARS}}…$`, 'm'));
  assert.not.match(text, /\x9b/);
  assert.match(text, /^x-escape: a\\x9b31mb$/m);
});

test.run();
