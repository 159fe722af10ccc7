import { UsageError } from './errors.js';

/** A listen or dial address. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port`, `:port` or `port` (host defaults to `defaultHost`).
 * Throws UsageError naming the bad value.
 */
export function parseHostPort(value: string, defaultHost = '0.0.0.0'): HostPort {
  let host = defaultHost;
  let portText = value;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (value.includes(':')) {
    const i = value.lastIndexOf(':');
    host = value.slice(0, i) || defaultHost;
    portText = value.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`invalid address "${value}" (want host:port)`);
  return { host, port };
}

/** `host:port` for URLs, bracketing IPv6 hosts. */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as dual-stack sockets report IPv4 peers) → `1.2.3.4`; others unchanged. */
export function canonicalAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1] : address;
}

/** Whether a listen or dial host only reaches this machine: `localhost`, 127.0.0.0/8, `::1` (bracketed or not). */
export function isLoopbackHost(host: string): boolean {
  const h = canonicalAddress(host.replace(/^\[(.*)\]$/, '$1').toLowerCase());
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::1' || h === '0:0:0:0:0:0:0:1';
}
