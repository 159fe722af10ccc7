import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private CA and a server certificate it signed, as PEM bytes and as files. */
export interface TestPki {
  dir: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  caPath: string;
  certPath: string;
  keyPath: string;
  /** Removes the files. */
  remove(): void;
}

/**
 * Makes a CA and a leaf for 127.0.0.1 / localhost / *.localhost signed by it, with the openssl
 * command (fast: P-256 keys), in a fresh temporary folder. Valid for two days.
 */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'jetty-pki-'));
  const p = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new Error(`openssl ${args[0]} failed (the TLS tests need the openssl command): ${(err as Error).message}`);
    }
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=Jetty Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  openssl(['req', ...ec, '-keyout', p('edge.key'), '-out', p('edge.csr'), '-subj', '/CN=localhost']);
  writeFileSync(p('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', p('edge.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('edge.crt'), '-days', '2', '-extfile', p('ext.cnf')]);
  return {
    dir,
    ca: readFileSync(p('ca.crt')),
    cert: readFileSync(p('edge.crt')),
    key: readFileSync(p('edge.key')),
    caPath: p('ca.crt'),
    certPath: p('edge.crt'),
    keyPath: p('edge.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
