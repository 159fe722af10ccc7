import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { AgentUnavailableError, ProtocolError, UsageError, toError } from '../errors.js';
import type { AbortOptions } from '../wait.js';
import { DISCOVERY_PATH, TLS_REQUIRED_ERROR } from '../well-known.js';
import { checkDiscovery } from './edge-answers.js';
import { certificateError } from './edge-link.js';

/** How long discovery may take. */
export const DISCOVERY_TIMEOUT_MS = 5_000;
/** Largest discovery answer read. */
const MAX_DISCOVERY_BYTES = 64 * 1024;

/** What the edge says it offers at DISCOVERY_PATH. */
export interface Discovery {
  version: number;
  domain: string;
  publicPort: number;
  transports: { grpc?: { port: number }; websocket?: { path: string } };
}

/**
 * Asks the edge what it offers: GET DISCOVERY_PATH, over TLS (verified, `ca` or the system roots) for
 * an https:// edge. Redirects are not followed; the answer is checked (checkDiscovery). Rejects with UsageError when the edge only speaks
 * HTTPS, EdgeCertificateError when its certificate does not verify, the signal's reason on abort,
 * AgentUnavailableError otherwise.
 */
export function discover(edge: URL, options: { ca?: Buffer } & AbortOptions = {}): Promise<Discovery> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const url = new URL(DISCOVERY_PATH, edge);
  const tls = url.protocol === 'https:';
  return new Promise<Discovery>((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      if (res.statusCode === 400 && res.headers['x-jetty-error'] === TLS_REQUIRED_ERROR) {
        res.destroy();
        reject(new UsageError(`the edge at ${edge.origin} only speaks HTTPS: use --edge https://${edge.host}`));
        return;
      }
      if (res.statusCode !== 200) {
        res.destroy();
        reject(new AgentUnavailableError(`${url.href} answered ${res.statusCode}: is this a Jetty edge?`));
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_DISCOVERY_BYTES) res.destroy(new ProtocolError(`discovery answer above ${MAX_DISCOVERY_BYTES} bytes`));
        else parts.push(d);
      });
      res.on('error', (err) => reject(err instanceof ProtocolError ? err : new AgentUnavailableError(`discovery from ${edge.origin} failed: ${err.message}`, { cause: err })));
      res.on('end', () => {
        try {
          resolve(checkDiscovery(JSON.parse(Buffer.concat(parts).toString('utf8')), edge));
        } catch (err) {
          reject(err instanceof ProtocolError ? err : new ProtocolError(`the edge at ${edge.origin} sent discovery that is not JSON`, { cause: err }));
        }
      });
    };
    const req = (tls ? httpsGet : httpGet)(url, { ca: options.ca, agent: false, headers: { accept: 'application/json' } }, onResponse);
    const timer = setTimeout(() => req.destroy(new AgentUnavailableError(`the edge at ${edge.origin} did not answer discovery within ${DISCOVERY_TIMEOUT_MS} ms`)), DISCOVERY_TIMEOUT_MS);
    const onAbort = (): void => {
      req.destroy(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    });
    req.on('error', (err) => {
      if (err instanceof AgentUnavailableError || (signal?.aborted && err === signal.reason)) return reject(err);
      const code = String((err as { code?: unknown }).code ?? '');
      if (tls && /WRONG_VERSION_NUMBER|EPROTO|PACKET_LENGTH_TOO_LONG/.test(code)) {
        return reject(new AgentUnavailableError(`TLS with the edge at ${edge.origin} failed (${err.message}): does it serve HTTPS (--tls-cert)?`, { cause: err }));
      }
      reject(certificateError(err, edge.origin) ?? new AgentUnavailableError(`cannot reach the edge at ${edge.origin}: ${toError(err).message}`, { cause: err }));
    });
  });
}
