import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { WebSocket, WebSocketServer } from 'ws';
import { FRAME_HEADROOM_BYTES, gatherData } from '../../src/codec/data-chunk.js';
import { dataChunk, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { MAX_CHUNK_DATA_BYTES } from '../../src/codec/tunnel-codec.js';
import { encodeWsFrameProto } from '../../src/codec/ws-frame.js';
import { GATHER_POOL_BUFFERS, gatherPool } from '../../src/streams/gathering-reader.js';
import { writeDirectData } from '../../src/streams/ws-direct.js';
import { patternBytes, waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite('streams/ws-direct');

const rawOf = (ws: WebSocket): Socket => (ws as unknown as { _socket: Socket })._socket;

/** A loopback WebSocket: the server's and the client's ends, each collecting the messages it receives. */
async function connection() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 1 << 20 });
  await once(wss, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false, maxPayload: 1 << 20 });
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open');
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  server.on('message', (d: Buffer, binary: boolean) => binary && atServer.push(d));
  client.on('message', (d: Buffer, binary: boolean) => binary && atClient.push(d));
  const close = async (): Promise<void> => {
    client.terminate();
    server.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
  return { server, client, atServer, atClient, close };
}

// Payload sizes around the WebSocket length encodings (7-bit, 16-bit, 64-bit) once the WsFrame and
// HTTPChunk bytes are added, up to a full chunk; with and without the seq tail.
const SIZES = [0, 1, 110, 114, 116, 118, 125, 65_515, 65_520, 65_526, 65_536, 70_000, MAX_CHUNK_DATA_BYTES];
const chunks: HTTPChunk[] = SIZES.flatMap((n, i) => [dataChunk(patternBytes(n, i + 1)), { ...dataChunk(patternBytes(n, i + 100)), seq: 300 + i }]);

test('a DATA frame written straight to the socket is, byte for byte, the message ws.send() would carry: masked from the client, unmasked from the server', async () => {
  const { server, client, atServer, atClient, close } = await connection();
  try {
    let written = 0;
    for (const chunk of chunks) {
      writeDirectData(rawOf(client), 300, chunk, true, () => written++);
      writeDirectData(rawOf(server), 300, chunk, false, () => written++);
    }
    await waitFor(() => atServer.length === chunks.length && atClient.length === chunks.length, 5000, 'every frame at both ends');
    assert.is(written, 2 * chunks.length);
    chunks.forEach((chunk, i) => {
      const want = Buffer.from(encodeWsFrameProto({ stream: 300, chunk }));
      assert.ok(atServer[i].equals(want), `client → server, frame ${i} (${chunk.data!.byteLength} bytes)`);
      assert.ok(atClient[i].equals(want), `server → client, frame ${i} (${chunk.data!.byteLength} bytes)`);
    });
  } finally {
    await close();
  }
});

test('a full gather buffer written straight to the socket goes back to the pool once written, once, and the pool keeps at most GATHER_POOL_BUFFERS', async () => {
  const { client, atServer, close } = await connection();
  try {
    const full = patternBytes(MAX_CHUNK_DATA_BYTES, 7);
    const parts = [full.subarray(0, 100_000), full.subarray(100_000)];
    const lent = Array.from({ length: GATHER_POOL_BUFFERS + 3 }, () => gatherData(parts, MAX_CHUNK_DATA_BYTES, gatherPool.take));
    const before = gatherPool.freeBuffers;
    let written = 0;
    for (const chunk of lent) writeDirectData(rawOf(client), 1, chunk, true, () => written++);
    // The same payload again, and a cut of it: neither is taken back a second time.
    writeDirectData(rawOf(client), 1, lent[0], true, () => written++);
    writeDirectData(rawOf(client), 1, dataChunk(lent[1].data!.subarray(0, 1000)), true, () => written++);
    await waitFor(() => written === lent.length + 2, 5000, 'every write called back');
    assert.is(gatherPool.freeBuffers, GATHER_POOL_BUFFERS);
    assert.ok(gatherPool.freeBuffers - before <= GATHER_POOL_BUFFERS);
    // Taken back buffers are lent again: a full gather gets one of them, framed in place as before.
    const again = gatherData(parts, MAX_CHUNK_DATA_BYTES, gatherPool.take);
    assert.is(gatherPool.freeBuffers, GATHER_POOL_BUFFERS - 1);
    assert.is(again.data!.byteOffset, FRAME_HEADROOM_BYTES);
    assert.ok(Buffer.from(again.data!).equals(full));
    // A smaller gather is never pooled.
    assert.is(gatherData([full.subarray(0, 100_000), full.subarray(100_000, 150_000)], 150_000, gatherPool.take).data!.byteLength, 150_000);
    assert.is(gatherPool.freeBuffers, GATHER_POOL_BUFFERS - 1);
    assert.ok(atServer.every((m, i) => i >= lent.length || m.subarray(-MAX_CHUNK_DATA_BYTES).equals(full)));
  } finally {
    await close();
  }
});

test.run();
