import { createServer, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Pool } from 'undici';
import * as assert from 'uvu/assert';
import { POOLED_READ_AHEAD_BYTES, PooledOrigin, PooledResponse } from '../../src/agent/pooled-origin.js';
import { ChunkKind, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { silentLogger } from '../../src/logger.js';
import { ExchangePipeline } from '../../src/streams/exchange-pipeline.js';
import { waitForEvent } from '../../src/wait.js';
import { waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite('agent/pooled-origin');

const BLOCK = Buffer.alloc(64 * 1024, 7);

/** An origin writing BLOCKs for ever, honouring backpressure; `written` counts what it handed to its socket. */
async function endlessOrigin(): Promise<{ server: Server; port: number; written: () => number; paused: () => boolean; res: () => ServerResponse | undefined }> {
  let written = 0;
  let paused = false;
  let current: ServerResponse | undefined;
  const server = createServer((_req, res) => {
    current = res;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const pump = (): void => {
      paused = false;
      while (!res.destroyed) {
        written += BLOCK.length;
        if (!res.write(BLOCK)) {
          paused = true;
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, written: () => written, paused: () => paused, res: () => current };
}

test('a response nobody reads pauses the origin with at most POOLED_READ_AHEAD_BYTES (plus one read) held', async () => {
  const origin = await endlessOrigin();
  const pool = new Pool(`http://127.0.0.1:${origin.port}`, { headersTimeout: 0, bodyTimeout: 0 });
  const pipeline = new ExchangePipeline({ id: 't', method: 'GET', path: '/', logger: silentLogger() });
  const response = new PooledResponse(pipeline);
  try {
    pool.dispatch({ method: 'GET', path: '/', headers: [], body: null }, response);
    const chunks = response.chunks();
    const head = (await chunks.next()).value as HTTPChunk;
    assert.is(head.kind, ChunkKind.HEADERS);
    assert.is(head.status, 200);
    // Settled: the origin stops once the read-ahead and the socket buffers are full (as transport-suite's check).
    let last = -1;
    await waitFor(() => {
      const stable = origin.paused() && origin.written() === last;
      last = origin.written();
      return stable;
    }, 10_000, 'the origin to stop writing');
    assert.ok(response.held <= POOLED_READ_AHEAD_BYTES + BLOCK.length * 2, `held ${response.held} bytes`);
    assert.ok(response.held > 0);
    // Taking the bytes resumes the origin.
    const before = origin.written();
    let taken = 0;
    // The kernel's socket buffers drain first: read until the origin writes again (bounded).
    while (origin.written() === before && taken < 256 * 1024 * 1024) {
      const { value } = await chunks.next();
      assert.is((value as HTTPChunk).kind, ChunkKind.DATA);
      taken += (value as HTTPChunk).data!.byteLength;
      assert.ok(response.held <= POOLED_READ_AHEAD_BYTES + BLOCK.length * 2, `held ${response.held} bytes`);
    }
    assert.ok(origin.written() > before, 'the origin wrote again');
    assert.is(pipeline.bytesOut.bytes, taken);
    await chunks.return(undefined);
  } finally {
    response.abort(new Error('test over'));
    origin.res()?.destroy();
    await pool.destroy();
    origin.server.closeAllConnections();
    origin.server.close();
  }
});

test('an exchange that fails aborts the origin request, and the origin sees its connection close', async () => {
  const origin = await endlessOrigin();
  const pooled = new PooledOrigin(new URL(`http://127.0.0.1:${origin.port}`));
  const pipeline = new ExchangePipeline({ id: 't', method: 'GET', path: '/', logger: silentLogger() });
  let failure: ((err: Error) => void) | undefined;
  const closed = new Promise<void>((resolve) => {
    failure = () => resolve();
  });
  // A minimal exchange: its sink takes the head and then fails, as a public client that left would make it.
  const exchange = {
    id: 't',
    buffered: false,
    error: undefined as Error | undefined,
    closed,
    source: (async function* () {})(),
    abort(err: Error) {
      this.error = err;
      failure?.(err);
    },
    async sink(source: AsyncIterable<HTTPChunk>) {
      for await (const chunk of source) {
        if (chunk.kind === ChunkKind.HEADERS) throw new Error('public client went away');
      }
    },
  };
  pipeline.attach(exchange);
  try {
    const served = pooled.serve('GET', '/', [{ name: 'Host', value: 'x' }], exchange, pipeline);
    await served;
    assert.ok(exchange.error, 'the exchange was aborted');
    const res = origin.res();
    assert.ok(res);
    if (!res.destroyed) await waitForEvent(res, 'close', { timeoutMs: 5000 });
  } finally {
    pooled.close();
    origin.server.closeAllConnections();
    origin.server.close();
  }
});

test('takes() sends only requests without a body, in origin form, without Expect, never CONNECT', () => {
  const get = { kind: ChunkKind.HEADERS, method: 'GET', target: '/x', end: true } as HTTPChunk;
  assert.ok(PooledOrigin.takes(get, []));
  assert.ok(PooledOrigin.takes(get, [{ name: 'Content-Length', value: '0' }]));
  assert.not.ok(PooledOrigin.takes({ ...get, end: undefined }, []));
  assert.not.ok(PooledOrigin.takes({ ...get, target: '*' }, []));
  assert.not.ok(PooledOrigin.takes({ ...get, target: 'http://a/x' }, []));
  assert.not.ok(PooledOrigin.takes({ ...get, method: 'CONNECT', target: 'a:443' }, []));
  assert.not.ok(PooledOrigin.takes(get, [{ name: 'Expect', value: '100-continue' }]));
  assert.not.ok(PooledOrigin.takes(get, [{ name: 'content-length', value: '5' }]));
});

test.run();
