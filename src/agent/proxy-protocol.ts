import { isIP } from 'node:net';
import type { Header } from '../codec/http-chunk.js';
import { ProtocolError } from '../errors.js';

/** PROXY protocol versions the agent can send its origin (`--proxy-protocol`). */
export const PROXY_PROTOCOL_VERSIONS = ['v1', 'v2'] as const;
export type ProxyProtocolVersion = (typeof PROXY_PROTOCOL_VERSIONS)[number];

/** The 12 bytes every PROXY v2 header starts with (haproxy proxy-protocol.txt §2.2). */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** One end of a tunnelled connection, as the edge's open HEADERS name it. */
export interface Endpoint {
  address: string;
  port: number;
}

/** The public client and the edge's public port of an exchange, from its open HEADERS (sent by the edge). */
export interface Peers {
  client: Endpoint;
  server: Endpoint;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`: a v4 client on a dual-stack socket is a v4 client. */
function unmapped(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

/**
 * The peers named in `headers` (Jetty-Client-Address, -Port, Jetty-Server-Address, -Port). The edge is
 * trusted no further than the protocol: anything but IP addresses and ports is a ProtocolError, so the
 * origin never gets a header built from arbitrary text.
 */
export function peersOf(headers: readonly Header[]): Peers {
  const get = (name: string): string => headers.find((h) => h.name.toLowerCase() === name)?.value ?? '';
  const endpoint = (which: string): Endpoint => {
    const address = unmapped(get(`jetty-${which}-address`));
    const text = get(`jetty-${which}-port`);
    const port = Number(text);
    if (isIP(address) === 0 || !/^\d{1,5}$/.test(text) || port > 65_535) throw new ProtocolError(`open HEADERS without a valid ${which} address and port`);
    return { address, port };
  };
  return { client: endpoint('client'), server: endpoint('server') };
}

/** The v1 text line: `PROXY TCP4 src dst sport dport\r\n` (v1 has no UDP: TCP only). */
export function proxyV1(peers: Peers): Buffer {
  const { client, server } = peers;
  const family = isIP(client.address) === 4 && isIP(server.address) === 4 ? 'TCP4' : isIP(client.address) === 6 && isIP(server.address) === 6 ? 'TCP6' : undefined;
  if (!family) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(`PROXY ${family} ${client.address} ${server.address} ${client.port} ${server.port}\r\n`, 'latin1');
}

function ipBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  // Expand `::` and read the eight groups.
  const [head, tail = ''] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The v2 binary header (command PROXY) for a TCP (`stream`) or UDP (`dgram`) connection. */
export function proxyV2(peers: Peers, transport: 'stream' | 'dgram'): Buffer {
  const { client, server } = peers;
  const v4 = isIP(client.address) === 4 && isIP(server.address) === 4;
  const v6 = isIP(client.address) === 6 && isIP(server.address) === 6;
  const proto = transport === 'stream' ? 0x1 : 0x2;
  // AF_UNSPEC (mixed families): the receiver uses the real connection's addresses.
  const family = v4 ? 0x10 : v6 ? 0x20 : 0x00;
  const body = v4 || v6 ? Buffer.concat([ipBytes(client.address), ipBytes(server.address), Buffer.alloc(4)]) : Buffer.alloc(0);
  if (body.length > 0) {
    body.writeUInt16BE(client.port, body.length - 4);
    body.writeUInt16BE(server.port, body.length - 2);
  }
  const head = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(head);
  head[12] = 0x21; // version 2, command PROXY
  head[13] = family === 0 ? 0x00 : family | proto;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

/** The header `version` puts before the first byte to the origin. */
export function proxyHeader(version: ProxyProtocolVersion, peers: Peers): Buffer {
  return version === 'v1' ? proxyV1(peers) : proxyV2(peers, 'stream');
}
