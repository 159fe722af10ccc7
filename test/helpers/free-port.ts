import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports for a process that must listen on an address chosen before it starts (restarts on the same
 * port, `--tcp-ports`, `--udp-ports`). A port the kernel hands out for `listen(0)` comes from the
 * ephemeral range, which is also where every outgoing connection takes its source port: between the
 * test closing its probe and the process binding, a load client's connection can take it (CI saw
 * "the port is in use"). So these come from below that range, at random, each checked free for both
 * TCP and UDP on every loopback address tests listen on, and never the same port twice in one test process.
 */

/** Lowest port handed out; below this sit well-known and registered services. */
const FLOOR = 20_000;
/** Attempts before giving up (each a bind that failed because something holds the port). */
const MAX_ATTEMPTS = 200;

const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), 32768 if unreadable. */
function ephemeralFloor(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Loopback addresses tests listen on: 127.0.0.1 and the cluster tests' edges (test/helpers/cluster.ts). */
const PROBED_HOSTS = ['127.0.0.1', '127.0.0.11', '127.0.0.12', '127.0.0.13'];

const tcpFreeOn = (port: number, host: string): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });

const udpFreeOn = (port: number, host: string): Promise<boolean> =>
  new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', () => { sock.close(); resolve(false); });
    sock.bind(port, host, () => sock.close(() => resolve(true)));
  });

async function free(port: number): Promise<boolean> {
  for (const host of PROBED_HOSTS) {
    if (!(await tcpFreeOn(port, host)) || !(await udpFreeOn(port, host))) return false;
  }
  return true;
}

/** `n` distinct ports, free for TCP and UDP on PROBED_HOSTS a moment ago and outside the ephemeral range. */
export async function freePorts(n: number): Promise<number[]> {
  const ceiling = ephemeralFloor();
  const ports: number[] = [];
  for (let attempt = 0; ports.length < n; attempt++) {
    if (attempt >= MAX_ATTEMPTS) throw new Error(`no free port in ${FLOOR}..${ceiling - 1} after ${MAX_ATTEMPTS} attempts`);
    const port = FLOOR + Math.floor(Math.random() * (ceiling - FLOOR));
    if (handedOut.has(port)) continue;
    if (!(await free(port))) continue;
    handedOut.add(port);
    ports.push(port);
  }
  return ports;
}

/** One port of `freePorts`. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port;
}
