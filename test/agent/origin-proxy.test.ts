import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { OriginProxy } from '../../src/agent/origin-proxy.js';
import { ChunkKind, ResetCode, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { silentLogger } from '../../src/logger.js';
import type { ExchangeDuplex } from '../../src/streams/exchange-duplex.js';
import { startOrigin, waitFor, type Origin } from '../helpers/harness.js';
import { startH2Origin } from '../helpers/h2-origin-server.js';
import { H2_ORIGIN_MAX_CONCURRENT_STREAMS } from '../../src/agent/h2-origin.js';
import type { ServerHttp2Stream } from 'node:http2';

interface Ctx {
  origin: Origin;
  proxy: OriginProxy;
  seen: string[];
  closedSockets: number;
}

const test = suite<Ctx>('agent/origin-proxy');

test.before.each(async (ctx) => {
  ctx.seen = [];
  ctx.closedSockets = 0;
  ctx.origin = await startOrigin((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      ctx.seen.push(`${req.method} ${req.url} cl=${req.headers['content-length'] ?? '-'} te=${req.headers['transfer-encoding'] ?? '-'} ${Buffer.concat(parts).toString()}`);
      res.end('ok');
    });
  });
  ctx.origin.server.on('connection', (socket) => socket.on('close', () => ctx.closedSockets++));
  ctx.proxy = new OriginProxy({ origin: ctx.origin.url, logger: silentLogger() });
});

test.after.each(async (ctx) => {
  ctx.proxy.close();
  await ctx.origin.close();
});

/** An exchange as an edge would drive it: the request body chunks in, the response collected. */
function exchangeOf(request: HTTPChunk[]): ExchangeDuplex & { resetCode?: ResetCode; response: HTTPChunk[] } {
  let settle!: () => void;
  const ex = {
    id: 'x1',
    buffered: false,
    error: undefined as Error | undefined,
    resetCode: undefined as ResetCode | undefined,
    response: [] as HTTPChunk[],
    closed: new Promise<void>((resolve) => (settle = resolve)),
    source: (async function* () {
      yield* request;
    })(),
    async sink(source: AsyncIterable<HTTPChunk>) {
      for await (const chunk of source) ex.response.push(chunk);
      settle();
    },
    abort(err: Error, code?: ResetCode) {
      ex.error ??= err;
      ex.resetCode ??= code;
      settle();
    },
  };
  return ex;
}

/** Resolves with `p`, or rejects once `ms` have passed (a deadline, not a sleep). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function head(headers: Array<[string, string]>): HTTPChunk {
  return { kind: ChunkKind.HEADERS, exchangeId: 'x1', method: 'POST', target: '/', headers: [['Host', 'demo.localhost'], ...headers].map(([name, value]) => ({ name, value })) };
}

test('DATA beyond the request Content-Length never reaches the origin as a second request', async (ctx) => {
  // Guards against request smuggling by an edge: Node's client wrote bytes past a declared length as is.
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
  const ex = exchangeOf([{ kind: ChunkKind.DATA, data: Buffer.from(smuggled) }]);
  await ctx.proxy.serve(head([['Content-Length', '0']]), ex);
  assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR);
  await waitFor(() => ctx.closedSockets === 1, 5000, 'the origin connection to close');
  assert.not.ok(ctx.seen.some((s) => s.includes('/smuggled')), ctx.seen.join('\n'));
});

test('Content-Length with Transfer-Encoding reaches the origin as Content-Length alone; a short body is cut', async (ctx) => {
  // Guards against both framings reaching the origin, and a short body ending as a complete request.
  let ex = exchangeOf([{ kind: ChunkKind.DATA, data: Buffer.from('hello') }]);
  await ctx.proxy.serve(head([['Transfer-Encoding', 'chunked'], ['Content-Length', '5']]), ex);
  assert.is(ex.error, undefined);
  assert.equal(ctx.seen, ['POST / cl=5 te=- hello']);
  ex = exchangeOf([{ kind: ChunkKind.DATA, data: Buffer.from('short') }]);
  // Ends at once: the origin must not sit waiting for the rest of the body (until its own timeout).
  await within(ctx.proxy.serve(head([['Content-Length', '10']]), ex), 2000, 'serve() to end after a short body');
  assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR);
  assert.is(ctx.seen.length, 1);
});

test('a request head Node refuses is reset as a protocol error; serve() never rejects', async (ctx) => {
  // Guards against a hostile edge crashing the agent: request() threw out of serve().
  const ex = exchangeOf([]);
  await ctx.proxy.serve(head([['X-Bad', 'a\r\nb']]), ex);
  assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR);
  const differing = exchangeOf([]);
  await ctx.proxy.serve(head([['Content-Length', '1'], ['Content-Length', '2']]), differing);
  assert.is(differing.resetCode, ResetCode.PROTOCOL_ERROR);
  assert.is(ctx.seen.length, 0);
});

test('h2c origin: a head HTTP/2 cannot carry is reset as a protocol error and never reaches the origin; serve() never rejects', async () => {
  // Guards against a hostile edge reaching an HTTP/2 origin with a field nghttp2 would pass on, or crashing the agent.
  const h2 = await startH2Origin();
  let streams = 0;
  h2.handler = (stream) => {
    streams++;
    stream.respond({ ':status': 200 }, { endStream: true });
  };
  const proxy = new OriginProxy({ origin: h2.url, logger: silentLogger() });
  try {
    for (const bad of [[['X-Bad', 'a\r\nb']], [['Bad Name', 'x']], [['Content-Type', 'a'], ['Content-Type', 'b']], [['Content-Length', '1'], ['Content-Length', '2']]] as Array<Array<[string, string]>>) {
      const ex = exchangeOf([]);
      await within(proxy.serve(head(bad), ex), 5000, `serve() of ${JSON.stringify(bad)}`);
      assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR, JSON.stringify(bad));
    }
    for (const bad of [{ method: 'GET /x' }, { method: 'G\r\nX: y' }, { target: '/a b' }, { target: '/a\r\nx: y' }]) {
      const ex = exchangeOf([]);
      await proxy.serve({ ...head([]), ...bad }, ex);
      assert.is(ex.resetCode, ResetCode.PROTOCOL_ERROR, JSON.stringify(bad));
    }
    assert.is(streams, 0);
    const ok = exchangeOf([]);
    await proxy.serve(head([]), ok);
    assert.is(ok.error, undefined);
    assert.is(ok.response[0].status, 200);
  } finally {
    proxy.close();
    await h2.close();
  }
});

test('h2c origin that refuses connections: the exchange is reset as an origin error, and the next one tries again', async () => {
  const h2 = await startH2Origin();
  await h2.close();
  const proxy = new OriginProxy({ origin: h2.url, logger: silentLogger() });
  try {
    for (let i = 0; i < 2; i++) {
      const ex = exchangeOf([]);
      await within(proxy.serve(head([]), ex), 5000, 'serve() against a closed port');
      assert.is(ex.resetCode, ResetCode.ORIGIN_ERROR);
    }
  } finally {
    proxy.close();
  }
});

test('h2c origin: at most H2_ORIGIN_MAX_CONCURRENT_STREAMS streams are open at once, even when the origin allows more', async () => {
  // Node's HTTP/2 default would open as many as the server allows (4,294,967,295 for Node's server).
  const h2 = await startH2Origin();
  const held: ServerHttp2Stream[] = [];
  h2.handler = (stream) => void held.push(stream);
  const proxy = new OriginProxy({ origin: h2.url, logger: silentLogger() });
  try {
    const count = H2_ORIGIN_MAX_CONCURRENT_STREAMS + 4;
    const exchanges = Array.from({ length: count }, () => exchangeOf([]));
    const served = exchanges.map((ex) => proxy.serve({ ...head([]), method: 'GET' }, ex));
    await waitFor(() => held.length === H2_ORIGIN_MAX_CONCURRENT_STREAMS, 10000, 'the cap of streams to be open');
    // The rest wait for a slot: answering the open ones lets them through, and every exchange completes.
    let answered = 0;
    while (answered < count) {
      await waitFor(() => held.length > 0, 10000, 'a held stream');
      assert.ok(held.length <= H2_ORIGIN_MAX_CONCURRENT_STREAMS, `${held.length} streams open`);
      for (const s of held.splice(0)) {
        s.respond({ ':status': 200 }, { endStream: true });
        answered++;
      }
    }
    await within(Promise.all(served), 10000, 'every exchange to complete');
    assert.ok(exchanges.every((ex) => ex.error === undefined && ex.response[0]?.status === 200));
  } finally {
    proxy.close();
    await h2.close();
  }
});

test.run();
