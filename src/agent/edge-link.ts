import { isLoopbackHost } from '../address.js';
import { EdgeCertificateError, UsageError } from '../errors.js';

/** How the agent reaches its edge. */
export interface EdgeLink {
  /** The edge's public URL; `https:` means TLS for discovery, WebSocket (wss) and gRPC alike. */
  edge: URL;
  token?: string;
  /** PEM CA certificate(s) that sign the edge's certificate, instead of the system's roots. */
  edgeCa?: Buffer;
  /** Send the token over plain http:// to a non-loopback edge anyway. */
  insecure?: boolean;
}

/**
 * Throws UsageError for a link that would leak: a token in cleartext to a non-loopback edge (unless
 * `insecure`), or a CA for an edge that uses no TLS.
 */
export function checkEdgeLink(link: EdgeLink): void {
  if (link.edge.protocol === 'https:') return;
  if (link.edgeCa) throw new UsageError(`--edge-ca needs an https:// edge (got ${link.edge.origin})`);
  if (link.token && !link.insecure && !isLoopbackHost(link.edge.hostname)) {
    throw new UsageError(
      `refusing to send the token in cleartext to ${link.edge.origin} (not a loopback address): use --edge https://${link.edge.host}, or --insecure to send it anyway`,
    );
  }
}

// Node's certificate verification codes (OpenSSL's, plus the host name check).
const CERT_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH/;
// grpc-js passes only the message on.
const CERT_MESSAGE = /certificate|self[- ]signed|Hostname\/IP does not match/i;

/**
 * The EdgeCertificateError for a failure anywhere in `err`'s cause chain that is a failed certificate
 * verification; undefined for anything else.
 */
export function certificateError(err: unknown, where: string): EdgeCertificateError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? '');
    const details = String((e as { details?: unknown }).details ?? e.message);
    if (CERT_CODE.test(code) || CERT_MESSAGE.test(details)) {
      const reason = CERT_CODE.test(code) ? e.message : details.replace(/^.*Last error: (Error: )?/, '').replace(/\.? ?Resolution note:.*$/, '');
      return new EdgeCertificateError(`cannot verify the TLS certificate of the edge at ${where}: ${reason} (a private CA? give it with --edge-ca FILE)`, { cause: err });
    }
  }
  return undefined;
}
