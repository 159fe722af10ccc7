import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';

/** A UDP server on 127.0.0.1:0 whose every datagram goes to `onMessage` (default: echo). */
export class UdpOriginServer {
  readonly socket: Socket;
  port = 0;
  /** Source ports seen (one per agent flow socket). */
  readonly peers = new Set<number>();
  onMessage: (msg: Buffer, rinfo: RemoteInfo, socket: Socket) => void = (msg, rinfo, socket) => socket.send(msg, rinfo.port, rinfo.address);

  private constructor() {
    this.socket = createSocket('udp4');
    this.socket.on('message', (msg, rinfo) => {
      this.peers.add(rinfo.port);
      this.onMessage(msg, rinfo, this.socket);
    });
  }

  static async start(): Promise<UdpOriginServer> {
    const o = new UdpOriginServer();
    o.socket.bind(0, '127.0.0.1');
    await once(o.socket, 'listening');
    o.port = o.socket.address().port;
    return o;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A client socket bound on 127.0.0.1 (one flow). */
export async function udpClient(): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** A tiny DNS server answering every A question with `address` (one answer, TTL 60). */
export function dnsAnswer(query: Buffer, address: string): Buffer {
  // Header (12 bytes), then the question: QNAME labels up to the 0 byte, QTYPE, QCLASS.
  let end = 12;
  while (query[end] !== 0) end += query[end] + 1;
  const question = query.subarray(12, end + 5);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180, 2); // response, recursion desired and available, no error
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  const answer = Buffer.alloc(16);
  answer.writeUInt16BE(0xc00c, 0); // the name at offset 12
  answer.writeUInt16BE(1, 2); // A
  answer.writeUInt16BE(1, 4); // IN
  answer.writeUInt32BE(60, 6);
  answer.writeUInt16BE(4, 10);
  address.split('.').forEach((b, i) => (answer[12 + i] = Number(b)));
  return Buffer.concat([header, question, answer]);
}
