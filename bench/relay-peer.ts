// The floor peer: two bare Node TCP relays chained in front of the origin (bench/tcp-relay.ts), measured
// with the same origin, curl and load generator as Jetty. What it cannot pass on this machine, no tunnel
// of two Node processes that each read and write every byte can.
import { join } from 'node:path';
import { ROOT, freePort, startProc, type Proc } from './procs.js';

const RELAY_JS = join(ROOT, 'dist/bench/tcp-relay.js');
/** The row's name in the tables. */
export const RELAY_LABEL = '2 × Node TCP relay';

export interface RelayPeer {
  /** The relay the load generator connects to (the edge's place), and the one in front of the origin (the agent's). */
  front: Proc;
  back: Proc;
  port: number;
  stop(): Promise<void>;
}

async function relay(listenPort: number, toPort: number): Promise<Proc> {
  const { proc, ready } = startProc(process.execPath, [RELAY_JS, String(listenPort), String(toPort)], /relay (\d+)/);
  await ready;
  return proc;
}

export async function startRelayPeer(originPort: number): Promise<RelayPeer> {
  const backPort = await freePort();
  const back = await relay(backPort, originPort);
  const port = await freePort();
  const front = await relay(port, backPort);
  return { front, back, port, stop: async () => void (await Promise.all([front.stop(), back.stop()])) };
}
