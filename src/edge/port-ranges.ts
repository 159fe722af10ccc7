/**
 * Port ranges as the edge's `tcp-ports` / `udp-ports` settings and a token's `ports:` spell them:
 * `20000-20099`, `5432`, or a list of both (`20000-20009,20100`; a YAML list). Ports 1-65535.
 */

/** One inclusive range; a single port is a range of one. */
export interface PortRange {
  from: number;
  to: number;
}

const RANGE = /^(\d{1,5})(?:-(\d{1,5}))?$/;

/** Parses a list of ranges (a comma-separated string or a list); '' or [] = none. Throws a plain message. */
export function parsePortRanges(raw: unknown): PortRange[] {
  const items = Array.isArray(raw) ? raw.map(String) : raw === undefined || raw === null ? [] : String(raw).split(',');
  const out: PortRange[] = [];
  for (const item of items.map((s) => s.trim()).filter(Boolean)) {
    const m = RANGE.exec(item);
    const from = Number(m?.[1]);
    const to = m?.[2] === undefined ? from : Number(m[2]);
    if (!m || from < 1 || to > 65_535 || to < from) throw new Error(`bad port range "${item}" (want PORT or FROM-TO within 1-65535)`);
    out.push({ from, to });
  }
  return out;
}

/** Whether `port` is in one of `ranges`. */
export function inPortRanges(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some((r) => port >= r.from && port <= r.to);
}

/** `20000-20099,20200`, as the settings spell it. */
export function formatPortRanges(ranges: readonly PortRange[]): string {
  return ranges.map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`)).join(',');
}

/** Every port of `ranges`, in order, each once. */
export function* portsOf(ranges: readonly PortRange[]): Generator<number> {
  const seen = new Set<number>();
  for (const r of ranges) {
    for (let p = r.from; p <= r.to; p++) {
      if (seen.has(p)) continue;
      seen.add(p);
      yield p;
    }
  }
}
