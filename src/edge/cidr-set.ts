import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { canonicalAddress } from '../address.js';

/**
 * A set of addresses and CIDR blocks, IPv4 and IPv6 (`10.0.0.0/8`, `fd00::/8`, `203.0.113.7`), as
 * `trusted-proxies` lists them. IPv4 peers reported by a dual-stack socket as `::ffff:1.2.3.4` match
 * the IPv4 entries.
 */
export class CidrSet {
  private readonly list = new BlockList();
  readonly size: number;

  /** Throws an Error naming the first entry that is neither an address nor a CIDR block. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) addEntry(this.list, entry);
    this.size = entries.length;
  }

  has(address: string | undefined): boolean {
    if (!address || this.size === 0) return false;
    const a = canonicalAddress(address);
    if (isIPv4(a)) return this.list.check(a, 'ipv4');
    if (isIPv6(a)) return this.list.check(a, 'ipv6');
    return false;
  }
}

function addEntry(list: BlockList, entry: string): void {
  const [rawAddress, prefixText, extra] = entry.trim().split('/');
  const bare = rawAddress.replace(/^\[(.*)\]$/, '$1');
  const address = canonicalAddress(bare);
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  const bits = family === 'ipv4' ? 32 : 128;
  // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8 written as mapped IPv6.
  const mappedBits = address !== bare ? 96 : 0;
  const prefix = prefixText === undefined ? bits : Number(prefixText) - mappedBits;
  if (!family || extra !== undefined || !/^\d*$/.test(prefixText ?? '') || prefixText === '' || prefix < 0 || prefix > bits) {
    throw new Error(`"${entry}" is not an address or CIDR block (want 10.0.0.0/8, fd00::/8, 203.0.113.7)`);
  }
  list.addSubnet(address, prefix, family);
}

/** The `trusted-proxies` setting: a comma-separated string or a YAML list, each entry checked. */
export function parseCidrList(raw: unknown): string[] {
  const entries = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((s) => s.trim()).filter(Boolean);
  new CidrSet(entries);
  return entries;
}
