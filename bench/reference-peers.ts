// The rows every comparison phase (throughput, small) measures Jetty against, all in front of one origin:
// direct to the origin, `ssh -R` (skipped with a note when sshd is missing) and two bare Node TCP relays.
import type { Peer } from './load.js';
import type { Proc, Tunnel } from './procs.js';
import { RELAY_LABEL, startRelayPeer } from './relay-peer.js';
import { startSshPeer, sshUnavailable } from './ssh-peer.js';

export interface ReferencePeers {
  peers: Peer[];
  /** Why a row is missing (no sshd). */
  notes: string[];
  /** Stops whatever was started, also after a failed start. */
  stop(): Promise<void>;
}

/** A peer on a loopback port whose Host is that address. */
function loopbackPeer(label: string, port: number, cpuPids: [number, number] | null, originPid: number): Peer {
  return { label, base: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, cpuPids, originPid };
}

/** A Jetty tunnel as a peer: the edge is its server side, the agent its client side. */
export function tunnelPeer(label: string, t: Tunnel, originPid: number): Peer {
  return { label, base: t.base, host: t.host, cpuPids: [t.edge.pid, t.agent.pid], originPid };
}

export async function startReferencePeers(origin: { proc: Proc; port: number }): Promise<ReferencePeers> {
  const originPid = origin.proc.pid;
  const stops: (() => Promise<void>)[] = [];
  const refs: ReferencePeers = {
    peers: [loopbackPeer('direct to origin', origin.port, null, originPid)],
    notes: [],
    stop: async () => void (await Promise.all(stops.map((s) => s()))),
  };
  try {
    const noSsh = sshUnavailable();
    if (noSsh) refs.notes.push(`ssh -R skipped: ${noSsh}`);
    else {
      const ssh = await startSshPeer(origin.port);
      stops.push(() => ssh.stop());
      refs.peers.push(loopbackPeer('ssh -R', ssh.port, [ssh.sshd.pid, ssh.ssh.pid], originPid));
    }
    const relay = await startRelayPeer(origin.port);
    stops.push(() => relay.stop());
    refs.peers.push(loopbackPeer(RELAY_LABEL, relay.port, [relay.front.pid, relay.back.pid], originPid));
    return refs;
  } catch (err) {
    await refs.stop();
    throw err;
  }
}
