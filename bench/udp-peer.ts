import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

/**
 * The UDP bench's two ends, each run as its own process by bench/udp.ts so that neither the load
 * nor the echo competes with the other (or with the bench) for one event loop: at 50,000
 * datagrams/s a single process holding both was itself the limit, and the tunnel was not what got
 * measured.
 *
 *   node dist/bench/udp-peer.js echo                     prints `udp-echo PORT`, echoes every datagram
 *   node dist/bench/udp-peer.js load PORT RATE SECONDS   offers RATE 512-byte datagrams/s to PORT for
 *                                                        SECONDS, then prints `{"sent":N,"received":M,"drops":D}`
 *                                                        (D: echoes the kernel dropped at its full buffer)
 *   node dist/bench/udp-peer.js window PORT W SECONDS    keeps W datagrams in flight (one sent per echo)
 *                                                        for SECONDS: the rate the path carries, without
 *                                                        loss; prints the same JSON
 */

/** Kernel receive buffer each end asks for (capped by net.core.rmem_max), so the apparatus loses nothing to its own bursts. */
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Size of every offered datagram. */
const DATAGRAM_BYTES = 512;
/** Late echoes are counted until none has come for this long, ms. */
const QUIET_MS = 500;
/** Closed loop: no echo for this long means datagrams were lost; the window is filled again, ms. */
const STALL_MS = 200;

async function bound(): Promise<ReturnType<typeof createSocket>> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  s.setRecvBufferSize(RECV_BUFFER_BYTES);
  s.setSendBufferSize(RECV_BUFFER_BYTES);
  return s;
}

/** Datagrams the kernel dropped at this process's full receive buffer (the `drops` column of /proc/net/udp). */
function ownDrops(port: number): number {
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 13 && parseInt(f[1].split(':')[1], 16) === port) return Number(f[f.length - 1]);
  }
  return 0;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function echo(): Promise<void> {
  const s = await bound();
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  process.stdout.write(`udp-echo ${s.address().port}\n`);
}

async function load(port: number, rate: number, seconds: number): Promise<void> {
  const s = await bound();
  const payload = Buffer.alloc(DATAGRAM_BYTES, 0x63);
  let received = 0;
  s.on('message', () => received++);
  const t0 = performance.now();
  let sent = 0;
  // Sends what is due every millisecond: the offered rate stays fixed whatever the echoes do.
  while (performance.now() - t0 < seconds * 1000) {
    const due = Math.min(Math.floor(((performance.now() - t0) / 1000) * rate), rate * seconds);
    for (; sent < due; sent++) s.send(payload, port, '127.0.0.1');
    await tick(1);
  }
  let last = -1;
  while (last !== received) {
    last = received;
    await tick(QUIET_MS);
  }
  const drops = ownDrops(s.address().port);
  s.close();
  process.stdout.write(`${JSON.stringify({ sent, received, drops })}\n`);
}

/**
 * Closed loop: W datagrams in flight, each echo sends the next. A datagram lost would shrink the
 * window for good, so after STALL_MS without an echo the window is filled again (the missing ones
 * stay counted as lost).
 */
async function window(port: number, inFlight: number, seconds: number): Promise<void> {
  const s = await bound();
  const payload = Buffer.alloc(DATAGRAM_BYTES, 0x63);
  let received = 0;
  let sent = 0;
  let open = true;
  /** Datagrams given up as lost (window refilled without them). */
  let lost = 0;
  const fill = (): void => {
    for (; sent - received - lost < inFlight; sent++) s.send(payload, port, '127.0.0.1');
  };
  s.on('message', () => {
    received++;
    if (open) fill();
  });
  fill();
  const t0 = performance.now();
  let last = received;
  while (performance.now() - t0 < seconds * 1000) {
    await tick(STALL_MS);
    if (received === last) lost = sent - received;
    last = received;
    fill();
  }
  open = false;
  const elapsed = (performance.now() - t0) / 1000;
  const quiet = received;
  await tick(QUIET_MS);
  const drops = ownDrops(s.address().port);
  s.close();
  // Echoes after the end are not counted in the rate: only what came back within the time.
  process.stdout.write(`${JSON.stringify({ sent, received, drops, rate: quiet / elapsed })}\n`);
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'echo') await echo();
else if (mode === 'load' && rest.length === 3) await load(Number(rest[0]), Number(rest[1]), Number(rest[2]));
else if (mode === 'window' && rest.length === 3) await window(Number(rest[0]), Number(rest[1]), Number(rest[2]));
else {
  process.stderr.write('usage: udp-peer.js echo | load PORT RATE SECONDS | window PORT W SECONDS\n');
  process.exit(2);
}
