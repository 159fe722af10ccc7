import { randomUUID } from 'node:crypto';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { ChunkKind, type Header, type HTTPChunk } from '../../src/codec/http-chunk.js';
import { encodeChunk, encodeEdgeMessage, MAX_FRAME_BYTES } from '../../src/codec/tunnel-codec.js';
import { encodeWsFrameJson, encodeWsFrameProto, MAX_WS_FRAME_BYTES } from '../../src/codec/ws-frame.js';
import { MAX_HEADER_BYTES_CAP, MAX_HEADER_COUNT_CAP } from '../../src/edge/limits.js';

const test = suite('edge/limits');

/** The fields the edge adds to a head, at their largest (a routed Host is NAME.DOMAIN:PORT). */
const EDGE_FIELDS: Header[] = [
  { name: 'X-Forwarded-For', value: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255' },
  { name: 'X-Forwarded-Proto', value: 'https' },
  { name: 'X-Forwarded-Host', value: `${'n'.repeat(63)}.${'d'.repeat(253)}:65535` },
  { name: 'X-Request-Id', value: 'r'.repeat(200) },
];

/** A request head of `lines` header lines whose raw HTTP/1.1 form is MAX_HEADER_BYTES_CAP bytes. */
function headAtCap(lines: number, valueChar: string): HTTPChunk {
  const requestLine = 'GET / HTTP/1.1\r\n';
  let budget = MAX_HEADER_BYTES_CAP - requestLine.length - 2;
  const headers: Header[] = [];
  for (let i = 0; i < lines; i++) {
    const name = `h${i}`;
    const room = Math.floor(budget / (lines - i)) - name.length - 4;
    headers.push({ name, value: valueChar.repeat(Math.max(0, room)) });
    budget -= name.length + 4 + Math.max(0, room);
  }
  return { kind: ChunkKind.HEADERS, exchangeId: randomUUID(), method: 'GET', target: '/', headers: [...headers, ...EDGE_FIELDS] };
}

// A head above one frame would close the agent's whole session (1009 on WebSocket, RESOURCE_EXHAUSTED on
// gRPC): max-header-bytes is capped so that the largest allowed head always fits.
test('a request head at max-header-bytes and max-header-count fits one frame on every codec', () => {
  for (const lines of [1, 100, MAX_HEADER_COUNT_CAP]) {
    // obs-text doubles in the JSON codec's UTF-8; plain letters are the protobuf worst case per line.
    for (const ch of ['a', '\u00ff']) {
      const chunk = headAtCap(lines, ch);
      const what = `${lines} lines of ${JSON.stringify(ch)}`;
      assert.ok(encodeChunk(chunk).byteLength <= MAX_FRAME_BYTES, `HTTPChunk, ${what}`);
      assert.ok(encodeEdgeMessage({ open: { headers: chunk } }).byteLength <= MAX_FRAME_BYTES, `Open, ${what}`);
      assert.ok(encodeWsFrameProto({ stream: 1, chunk }).byteLength <= MAX_WS_FRAME_BYTES, `WsFrame, ${what}`);
      assert.ok(Buffer.byteLength(encodeWsFrameJson({ stream: 1, chunk }) as string) <= MAX_WS_FRAME_BYTES, `JSON, ${what}`);
    }
  }
});

test.run();
