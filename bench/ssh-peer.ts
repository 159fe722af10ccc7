// `ssh -R` as the reference peer: the bench's own sshd on a loopback port (never the system's, never port
// 22), with a throw-away host key, an authorized key it made and its own config, all in one temp
// directory removed on exit; then `ssh -N -R PORT:127.0.0.1:ORIGIN` through it. Nothing else is touched,
// except /run/sshd (sshd's privilege-separation directory, required when run as root), created if
// missing and removed again.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, onCleanup, pollUntil, removeTempDir, startProc, tempDir, type Proc } from './procs.js';

/** Where Debian's openssh-server puts sshd (it is not on a normal user's PATH). */
const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'];
/** How long sshd and the forward get to come up. */
const SSH_UP_TIMEOUT_MS = 10_000;
const PRIVSEP_DIR = '/run/sshd';

export interface SshPeer {
  /** The sshd listener; its children (one per connection) are the server side of the tunnel. */
  sshd: Proc;
  /** The `ssh -N -R` client: the agent side. */
  ssh: Proc;
  /** The forwarded port on 127.0.0.1. */
  port: number;
  stop(): Promise<void>;
}

/** Why ssh -R cannot run here, or undefined when it can. */
export function sshUnavailable(): string | undefined {
  if (!SSHD_CANDIDATES.some((p) => existsSync(p))) return `no sshd (${SSHD_CANDIDATES.join(' or ')}): apt-get install openssh-server`;
  for (const tool of ['ssh', 'ssh-keygen']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) return `no ${tool}: apt-get install openssh-client`;
  }
  return undefined;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Starts sshd and `ssh -R` forwarding a free loopback port to 127.0.0.1:originPort. */
export async function startSshPeer(originPort: number): Promise<SshPeer> {
  const sshdPath = SSHD_CANDIDATES.find((p) => existsSync(p))!;
  const dir = tempDir('jetty-bench-ssh-');
  const keygen = (file: string): void => {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, file)]);
    if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  };
  keygen('host_key');
  keygen('client_key');
  writeFileSync(join(dir, 'authorized_keys'), spawnSync('cat', [join(dir, 'client_key.pub')]).stdout);
  const sshdPort = await freePort();
  const config = [
    `ListenAddress 127.0.0.1:${sshdPort}`,
    `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'GatewayPorts no',
    'LogLevel ERROR',
  ].join('\n');
  writeFileSync(join(dir, 'sshd_config'), `${config}\n`);
  if (process.getuid?.() === 0 && !existsSync(PRIVSEP_DIR)) {
    mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
    onCleanup(() => rmSync(PRIVSEP_DIR, { recursive: true, force: true }));
  }
  // -D: stay in the foreground (our child, killed by pid); -e: errors to stderr.
  const { proc: sshd } = startProc(sshdPath, ['-D', '-e', '-f', join(dir, 'sshd_config')], null);
  await pollUntil(() => canConnect(sshdPort), `sshd did not listen on 127.0.0.1:${sshdPort}`, SSH_UP_TIMEOUT_MS);
  const port = await freePort();
  const { proc: ssh } = startProc(
    'ssh',
    [
      '-N',
      '-i', join(dir, 'client_key'),
      '-p', String(sshdPort),
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ExitOnForwardFailure=yes',
      '-o', 'LogLevel=ERROR',
      '-R', `${port}:127.0.0.1:${originPort}`,
      `${userInfo().username}@127.0.0.1`,
    ],
    null,
  );
  await pollUntil(() => canConnect(port), `ssh -R did not open 127.0.0.1:${port}`, SSH_UP_TIMEOUT_MS);
  return {
    sshd,
    ssh,
    port,
    async stop() {
      await Promise.all([ssh.stop(), sshd.stop()]);
      removeTempDir(dir);
    },
  };
}
