import { Writable } from 'node:stream';
import { pino } from 'pino';
import { suite } from './helpers/suite.js';
import * as assert from 'uvu/assert';
import { loggerOptions } from '../src/logger.js';

const test = suite('logger');

test('authorization, cookies and tokens are redacted wherever they are logged', () => {
  let out = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += chunk;
      cb();
    },
  });
  const log = pino(loggerOptions('info', 'edge'), sink);
  log.info({ headers: { authorization: 'Bearer secret-1', cookie: 'sid=secret-2', accept: '*/*' }, token: 'secret-3', agent: { token: 'secret-4' } }, 'x');
  assert.not.match(out, /secret-/);
  assert.match(out, /"accept":"\*\/\*"/);
  assert.match(out, /\[redacted\]/);
});

test.run();
