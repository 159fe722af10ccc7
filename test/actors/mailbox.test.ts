import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { Mailbox } from '../../src/actors/mailbox.js';

const test = suite('actors/mailbox');

test('delivers in order, including to a waiting receiver', async () => {
  const box = new Mailbox<number>(4);
  const waiting = box.receive();
  box.post(1);
  box.post(2);
  box.post(3);
  assert.is(await waiting, 1);
  assert.is(await box.receive(), 2);
  assert.is(await box.receive(), 3);
});

test('post() on a full mailbox throws ERR_MAILBOX_FULL and holds no more than capacity', () => {
  const box = new Mailbox<number>(3);
  for (let i = 0; i < 3; i++) box.post(i);
  assert.throws(() => box.post(4), (err: { code: string }) => err.code === 'ERR_MAILBOX_FULL');
  assert.is(box.size, 3);
});

test('post() after stop() rejects with ERR_ACTOR_STOPPED; queued messages still drain, then undefined', async () => {
  const box = new Mailbox<string>(2);
  box.post('a');
  box.stop();
  assert.throws(() => box.post('b'), (err: { code: string }) => err.code === 'ERR_ACTOR_STOPPED');
  assert.is(await box.receive(), 'a');
  assert.is(await box.receive(), undefined);
});

test('a long run of post/receive keeps the queue compact', async () => {
  const box = new Mailbox<number>(8);
  for (let i = 0; i < 10_000; i++) {
    box.post(i);
    assert.is(await box.receive(), i);
  }
  assert.is(box.size, 0);
});

test('idle only while a receiver waits: a message handed straight to it makes the mailbox busy though size stays 0', async () => {
  const mb = new Mailbox<number>();
  assert.is(mb.idle, false);
  const next = mb.receive();
  assert.is(mb.idle, true);
  mb.post(1);
  assert.is(mb.size, 0);
  assert.is(mb.idle, false);
  assert.is(await next, 1);
  mb.post(2);
  assert.is(mb.idle, false);
  assert.is(await mb.receive(), 2);
});

test.run();
