import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { H2_PREFACE, sortCleartext } from '../../src/edge/public-listener.js';
import { readBody, waitFor, within } from '../helpers/harness.js';

interface Ctx {
  server: Server;
  /** Each accepted connection with what sortCleartext decided (undefined until it does). */
  accepted: Array<{ socket: Socket; h2?: boolean }>;
  pending: Set<Duplex>;
  clients: Socket[];
}

/** How long a test connection may take to send enough bytes to be sorted. */
const SORT_TIMEOUT_MS = 300;

const test = suite<Ctx>('edge/sort-cleartext');

test.before.each(async (ctx) => {
  ctx.accepted = [];
  ctx.pending = new Set();
  ctx.clients = [];
  ctx.server = createServer((socket) => {
    const entry: { socket: Socket; h2?: boolean } = { socket };
    ctx.accepted.push(entry);
    sortCleartext(socket, SORT_TIMEOUT_MS, ctx.pending, (h2) => (entry.h2 = h2));
  });
  await new Promise<void>((resolve) => ctx.server.listen(0, '127.0.0.1', resolve));
});

test.after.each(async (ctx) => {
  for (const c of ctx.clients) c.destroy();
  for (const a of ctx.accepted) a.socket.destroy();
  await new Promise((resolve) => ctx.server.close(resolve));
});

async function client(ctx: Ctx): Promise<Socket> {
  const socket = connect((ctx.server.address() as AddressInfo).port, '127.0.0.1');
  ctx.clients.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  await waitFor(() => ctx.accepted.length === ctx.clients.length, 5000, 'the server to accept');
  return socket;
}

test('a preface sent in pieces is waited for, then every byte is left for HTTP/2', async (ctx) => {
  const socket = await client(ctx);
  const server = ctx.accepted[0];
  const rest = Buffer.from('\x00\x00\x00\x04\x00\x00\x00\x00\x00', 'latin1');
  socket.write(H2_PREFACE.subarray(0, 3));
  await waitFor(() => server.socket.bytesRead >= 3, 5000, 'the first piece');
  socket.write(H2_PREFACE.subarray(3, 20));
  await waitFor(() => server.socket.bytesRead >= 20, 5000, 'the second piece');
  assert.is(server.h2, undefined, 'sorted before the whole preface came');
  assert.is(ctx.pending.size, 1);
  socket.end(Buffer.concat([H2_PREFACE.subarray(20), rest]));
  await waitFor(() => server.h2 !== undefined, 5000, 'the sort');
  assert.is(server.h2, true);
  assert.is(ctx.pending.size, 0);
  assert.equal(await within(readBody(server.socket), 5000, 'the bytes'), Buffer.concat([H2_PREFACE, rest]));
});

test('HTTP/1.1 is told apart at the first byte off the preface, its bytes kept', async (ctx) => {
  for (const [first, second] of [['G', 'ET / HTTP/1.1\r\n\r\n'], ['PU', 'T / HTTP/1.1\r\n\r\n'], ['PRI * HTTP/1.1', '\r\n\r\n']]) {
    const socket = await client(ctx);
    const server = ctx.accepted[ctx.accepted.length - 1];
    socket.write(first);
    await waitFor(() => server.h2 !== undefined, 5000, `the sort of ${first}`);
    assert.is(server.h2, false, first);
    socket.end(second);
    assert.is((await within(readBody(server.socket), 5000, 'the bytes')).toString(), first + second);
  }
  assert.is(ctx.pending.size, 0);
});

test('a connection that stays silent, or stops mid-preface, is dropped after the timeout', async (ctx) => {
  const silent = await client(ctx);
  const partial = await client(ctx);
  partial.write(H2_PREFACE.subarray(0, 10));
  const closed = (s: Socket): Promise<unknown> => new Promise((resolve) => s.once('close', resolve));
  await within(Promise.all([closed(silent), closed(partial)]), SORT_TIMEOUT_MS + 5000, 'both to be dropped');
  assert.ok(ctx.accepted.every((a) => a.h2 === undefined && a.socket.destroyed));
  assert.is(ctx.pending.size, 0);
});

test('a connection closed by someone else while waiting leaves nothing pending', async (ctx) => {
  await client(ctx);
  assert.is(ctx.pending.size, 1);
  ctx.accepted[0].socket.destroy();
  await waitFor(() => ctx.pending.size === 0, 5000, 'the pending entry to go');
});

test.run();
