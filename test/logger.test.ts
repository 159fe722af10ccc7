import { Writable } from 'node:stream';
import { pino } from 'pino';
import { suite } from './helpers/suite.js';
import * as assert from 'uvu/assert';
import { LOG_TURN_BATCH_BYTES, loggerOptions, requestLineLogger, TurnBatch } from '../src/logger.js';

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

test('the request-line logger writes the same fields as its parent, which still redacts, and is made once per logger', () => {
  const dest = recorder();
  const log = pino(loggerOptions('info', 'edge'), dest);
  const entry = { id: 'r1', method: 'GET', path: '/x', status: 200, bytesIn: 0, bytesOut: 13, ms: 1.5, host: 'demo.localhost', transport: 'grpc', protocol: 'http/1.1' };
  requestLineLogger(log).info(entry, 'request');
  log.info(entry, 'request');
  log.info({ headers: { authorization: 'Bearer secret-1' } }, 'x');
  const [viaChild, viaParent, secret] = dest.writes.map((w) => JSON.parse(w) as Record<string, unknown>);
  delete viaChild.time;
  delete viaParent.time;
  assert.equal(viaChild, viaParent);
  assert.not.match(JSON.stringify(secret), /secret-1/);
  assert.is(requestLineLogger(log), requestLineLogger(log));
});

/** A destination that records each write it is handed. */
function recorder(): { writes: string[]; write(s: string): boolean; flush(cb?: () => unknown): void } {
  const writes: string[] = [];
  return { writes, write: (s) => (writes.push(s), true), flush: (cb) => void cb?.() };
}

test('the request lines of one event-loop turn reach the destination as one write, at the end of the turn', async () => {
  const dest = recorder();
  const log = pino(loggerOptions('info', 'edge'), new TurnBatch(dest));
  for (let i = 0; i < 5; i++) log.info({ i }, 'request');
  assert.is(dest.writes.length, 0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(dest.writes.length, 1);
  assert.is(dest.writes[0].split('\n').filter(Boolean).length, 5);
  log.info('next turn');
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(dest.writes.length, 2);
});

test('a turn that logs more than LOG_TURN_BATCH_BYTES hands them over without waiting, and flush() empties the batch', () => {
  const dest = recorder();
  const batch = new TurnBatch(dest);
  const line = `${'x'.repeat(1023)}\n`;
  for (let i = 0; i < LOG_TURN_BATCH_BYTES / line.length; i++) batch.write(line);
  assert.is(dest.writes.length, 1);
  assert.is(dest.writes[0].length, LOG_TURN_BATCH_BYTES);
  batch.write('tail\n');
  let flushed = false;
  batch.flush(() => (flushed = true));
  assert.equal(dest.writes.at(-1), 'tail\n');
  assert.ok(flushed);
});

test.run();
