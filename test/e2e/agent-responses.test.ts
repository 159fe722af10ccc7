import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChunkKind, END_CHUNK, ResetCode, type Header } from '../../src/codec/http-chunk.js';
import { RawWsAgent } from '../helpers/raw-ws-agent.js';
import { RawHttpClient, rawGet } from '../helpers/raw-http.js';
import { send } from '../helpers/harness.js';
import { assertStillServing, closeHostileBed, startHostileBed, type HostileBed } from '../helpers/hostile-bed.js';

/** What a public client sees when the edge refuses an agent's response for breaking HTTP framing. */
const PROTOCOL_PAGE = { status: 502, code: 'ERR_AGENT_PROTOCOL' };

interface Ctx extends HostileBed {
  raw?: RawWsAgent;
  clients: RawHttpClient[];
}

const test = suite<Ctx>('e2e/agent-responses');

test.before(async (ctx) => {
  Object.assign(ctx, await startHostileBed());
});

test.before.each((ctx) => {
  ctx.clients = [];
});

test.after.each(async (ctx) => {
  for (const c of ctx.clients) c.close();
  await ctx.raw?.close();
  ctx.raw = undefined;
  await assertStillServing(ctx);
});

test.after((ctx) => closeHostileBed(ctx));

async function client(ctx: Ctx): Promise<RawHttpClient> {
  const c = await RawHttpClient.connect(ctx.edge.publicPort);
  ctx.clients.push(c);
  return c;
}

/** Answers the next exchange of the raw agent with `headers`, then each DATA of `body`, then END. */
async function answer(raw: RawWsAgent, headers: Header[], body: string[] = [], status = 200): Promise<number> {
  const { stream } = await raw.nextExchange();
  raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status, headers } });
  for (const part of body) raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from(part) } });
  raw.send({ stream, chunk: END_CHUNK });
  return stream;
}

function split(received: string): { head: string; body: string } {
  const at = received.indexOf('\r\n\r\n');
  return { head: received.slice(0, at), body: received.slice(at + 4) };
}

test('Content-Length: 0 followed by DATA cannot plant a second response on a keep-alive connection', async (ctx) => {
  // Guards against response splitting: the edge wrote the agent's head as is, then its DATA, so the
  // bytes after an empty body were read by the client as the answer to its next request.
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'splitter');
  const c = await client(ctx);
  c.write(rawGet('splitter.localhost'));
  const forged = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged';
  const stream = await answer(ctx.raw, [{ name: 'Content-Length', value: '0' }], [forged]);
  await c.closedByPeer('the edge to cut the connection');
  assert.not.match(c.received, 'forged');
  assert.ok(c.received.split('HTTP/1.1 ').length <= 2, c.received);
  const reset = await ctx.raw.next((f) => f.stream === stream && 'chunk' in f && f.chunk.kind === ChunkKind.RESET);
  assert.is('chunk' in reset && reset.chunk.code, ResetCode.PROTOCOL_ERROR);
  // Only that exchange failed: the same agent answers the next request.
  const next = send(ctx.edge, 'splitter', '/');
  await answer(ctx.raw, [{ name: 'Content-Length', value: '2' }], ['ok']);
  assert.is((await next).body.toString(), 'ok');
});

test('Content-Length with Transfer-Encoding leaves the edge with Content-Length alone', async (ctx) => {
  // Guards against a head with both framings reaching the client (each hop could read the body differently).
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'framing');
  const c = await client(ctx);
  c.write(rawGet('framing.localhost', '/', true));
  await answer(ctx.raw, [{ name: 'Transfer-Encoding', value: 'chunked' }, { name: 'Content-Length', value: '5' }], ['hello']);
  await c.closedByPeer();
  const { head, body } = split(c.received);
  assert.match(head, /^content-length: 5$/im);
  assert.not.match(head, /transfer-encoding/i);
  assert.is(body, 'hello');
});

test('several differing or non-numeric Content-Length values are the agent protocol error (502); equal repeats are one', async (ctx) => {
  // Guards against passing an ambiguous length on: the client and the edge would disagree on where the body ends.
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'lengths');
  const bad = [['5', '6'], ['5, 6'], ['abc'], ['-1'], ['1e3'], ['0x10'], ['5 5'], [''], ['99999999999999999']];
  for (const values of bad) {
    const pending = send(ctx.edge, 'lengths', '/');
    await answer(ctx.raw, values.map((value) => ({ name: 'Content-Length', value })), ['hello']);
    const { res, body } = await pending;
    assert.is(res.statusCode, PROTOCOL_PAGE.status, JSON.stringify(values));
    assert.is(res.headers['x-jetty-error'], PROTOCOL_PAGE.code);
    assert.not.match(body.toString(), 'hello');
  }
  for (const values of [['5', '5'], ['5, 5']]) {
    const pending = send(ctx.edge, 'lengths', '/');
    await answer(ctx.raw, values.map((value) => ({ name: 'Content-Length', value })), ['hello']);
    const { res, body } = await pending;
    assert.is(res.headers['content-length'], '5');
    assert.is(body.toString(), 'hello');
  }
});

test('a body shorter or longer than its Content-Length is cut, never ended cleanly', async (ctx) => {
  // Guards against a short body ending as a complete response (the client waits, or takes the next bytes as body).
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'mismatch');
  // What the client may have received before the cut: never more than the declared length.
  const cases: Array<[string, string[], string]> = [
    ['10', ['short'], 'short'],
    ['3', ['abcdef'], ''],
    ['3', ['abc', 'def'], 'abc'],
  ];
  for (const [length, parts, most] of cases) {
    const c = await client(ctx);
    c.write(rawGet('mismatch.localhost'));
    await answer(ctx.raw, [{ name: 'Content-Length', value: length }], parts);
    await c.closedByPeer(`the edge to cut a body of ${parts.join('')} against ${length}`);
    const { body } = split(c.received);
    assert.ok(most.startsWith(body), `received ${JSON.stringify(body)} for ${parts.join('')} against ${length}`);
  }
});

// A response folded whole (HEADERS{data, end}) may leave in one end(): one that breaks its framing must
// not, and the agent must still hear that the edge refused it.
test('a response folded whole that breaks its framing is refused as when it came in parts: cut, and RESET PROTOCOL_ERROR to the agent', async (ctx) => {
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'folded');
  const cases: Array<[string, string, string]> = [
    ['GET', '0', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged'],
    ['GET', '10', 'short'],
    ['HEAD', '5', 'hello'],
  ];
  for (const [method, length, data] of cases) {
    const c = await client(ctx);
    c.write(rawGet('folded.localhost').replace(/^GET /, `${method} `));
    const { stream } = await ctx.raw.nextExchange();
    ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: length }], data: Buffer.from(data), end: true } });
    // A body past its length (or any on HEAD) is refused before the END it carries is read: the agent
    // hears why. A short one shows only at that END, when the exchange is over (cut, as in parts).
    if (method === 'HEAD' || data.length > Number(length)) {
      const reset = await ctx.raw.next((f) => f.stream === stream && 'chunk' in f && f.chunk.kind === ChunkKind.RESET);
      assert.is('chunk' in reset && reset.chunk.code, ResetCode.PROTOCOL_ERROR, `${method} with ${data.length} bytes against ${length}`);
    }
    await c.closedByPeer(`the edge to cut ${method} with ${data.length} bytes against ${length}`);
    assert.not.match(c.received, 'forged');
    assert.ok(c.received.split('HTTP/1.1 ').length <= 2, c.received);
  }
  // A folded response that keeps its framing is answered whole.
  const ok = send(ctx.edge, 'folded', '/');
  const { stream } = await ctx.raw.nextExchange();
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers: [{ name: 'Content-Length', value: '2' }], data: Buffer.from('ok'), end: true } });
  assert.is((await ok).body.toString(), 'ok');
});

test('hop-by-hop fields and those named in Connection are stripped from the agent head and trailers', async (ctx) => {
  // Guards against an agent setting the client connection's own fields, or framing fields in trailers.
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'hops');
  const c = await client(ctx);
  c.write(rawGet('hops.localhost', '/', true));
  const { stream } = await ctx.raw.nextExchange();
  const headers = [
    ['Connection', 'X-Secret'], ['X-Secret', '1'], ['Keep-Alive', 'timeout=99'], ['Proxy-Connection', 'keep-alive'],
    ['Upgrade', 'h2c'], ['TE', 'trailers'], ['Trailer', 'X-Ok'], ['X-Kept', 'yes'],
  ].map(([name, value]) => ({ name, value }));
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.HEADERS, status: 200, headers } });
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.DATA, data: Buffer.from('body') } });
  const trailers = [
    ['X-Ok', '1'], ['Content-Length', '99'], ['Host', 'evil.example'], ['Connection', 'close'], ['Transfer-Encoding', 'gzip'],
  ].map(([name, value]) => ({ name, value }));
  ctx.raw.send({ stream, chunk: { kind: ChunkKind.TRAILERS, headers: trailers } });
  ctx.raw.send({ stream, chunk: END_CHUNK });
  await c.closedByPeer();
  const { head, body } = split(c.received);
  assert.match(head, /^x-kept: yes$/im);
  assert.match(head, /^trailer: X-Ok$/im);
  for (const gone of [/x-secret/i, /timeout=99/, /proxy-connection/i, /upgrade/i, /^te:/im]) assert.not.match(head, gone);
  assert.is(body, '4\r\nbody\r\n0\r\nX-Ok: 1\r\n\r\n');
});

test('a final status outside 200-599 is the agent protocol error (502)', async (ctx) => {
  // Guards against Node throwing on the status and the page saying nothing of who failed.
  ctx.raw = await RawWsAgent.connect(ctx.edge, 'bad-status');
  const pending = send(ctx.edge, 'bad-status', '/');
  await answer(ctx.raw, [], [], 600);
  const { res } = await pending;
  assert.is(res.statusCode, PROTOCOL_PAGE.status);
  assert.is(res.headers['x-jetty-error'], PROTOCOL_PAGE.code);
});

test.run();
