// `npm run profile -- SCENARIO [--transport grpc|websocket|…] [--out DIR]`: a fresh edge and agent run
// under `node --cpu-prof` through one bench scenario (down, up, small, parallel, slow), are stopped
// (SIGTERM: they exit cleanly, which writes the profiles), and the top self-time functions of each are
// printed. The .cpuprofile files stay in DIR (default ./bench-profiles) for Chrome DevTools / speedscope.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { checkedDownload, download, originBodySha256, slowReader, smallGets, upload, uploadFile, type Target } from './load.js';
import { AGENT_FLAGS, MIB, jettyNodeFlags, startOrigin, startTunnel, stopTunnel } from './procs.js';

const GIB = Number(process.env.BENCH_GIB ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** Functions listed per process. */
const TOP = 20;

const SCENARIOS: Record<string, (t: Target) => Promise<unknown>> = {
  down: (t) => download(t, Math.round(GIB * 1024 ** 3)),
  up: (t) => {
    const bytes = Math.round(GIB * 1024 ** 3);
    return upload(t, uploadFile(bytes), bytes);
  },
  small: (t) => smallGets(t, SECONDS),
  parallel: (t) => {
    const sha = originBodySha256(100 * MIB);
    return Promise.all(Array.from({ length: 20 }, () => checkedDownload(t, 100 * MIB, sha)));
  },
  slow: (t) => slowReader(t, '5M', 10),
};

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

function arg(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Where a function lives: a package under node_modules, a Jetty file, node's internals. */
function owner(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node internals';
  const own = /dist\/(src\/.*)\.js$/.exec(url);
  return own ? `jetty ${own[1]}` : basename(url);
}

/**
 * Self time per function (name, file, line) and per owner (package, Jetty file), largest first, as
 * markdown. Shares are of busy samples: `(idle)` (the process waiting) is reported apart.
 */
export function topSelf(profile: CpuProfile, top = TOP): string[] {
  const total = profile.samples.length;
  const us = (profile.endTime - profile.startTime) / Math.max(1, total);
  const byFn = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let idle = 0;
  const parent = new Map<number, ProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  // Native and node-internal time (writeString, net, http…) is charged to the nearest caller outside
  // node itself: the package or Jetty file that asked for it. Only what no such caller reached
  // (the HTTP parser feeding a request in, timers) stays `node internals`.
  const ownerOf = (n: ProfileNode): string => {
    let internal = false;
    for (let x: ProfileNode | undefined = n; x; x = parent.get(x.id)) {
      const url = x.callFrame.url;
      if (url && !url.startsWith('node:')) return owner(url);
      internal ||= url.startsWith('node:');
    }
    if (internal) return 'node internals';
    return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native / VM)';
  };
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const hits = n.hitCount ?? 0;
    if (f.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const o = ownerOf(n);
    byOwner.set(o, (byOwner.get(o) ?? 0) + hits);
  }
  const busy = Math.max(1, total - idle);
  const rows = (m: Map<string, number>, n: number): string[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, hits]) => `| ${((100 * hits) / busy).toFixed(1)} | ${((hits * us) / 1000).toFixed(0)} | \`${k}\` |`);
  return [
    `${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s (start-up included), ${((100 * idle) / total).toFixed(0)} % idle; shares below are of the busy time`,
    '',
    '| self % of busy | self ms | function |',
    '|---|---|---|',
    ...rows(byFn, top),
    '',
    '| self % of busy | self ms | where (native and node-internal time charged to the package or Jetty file that called it) |',
    '|---|---|---|',
    ...rows(byOwner, 12),
  ];
}

async function main(): Promise<number> {
  const scenario = process.argv[2];
  const transport = arg('--transport') ?? (process.env.BENCH_TRANSPORTS ?? 'grpc').split(',')[0];
  if (!scenario || !SCENARIOS[scenario] || !AGENT_FLAGS[transport]) {
    process.stderr.write(`usage: npm run profile -- ${Object.keys(SCENARIOS).join('|')} [--transport ${Object.keys(AGENT_FLAGS).join('|')}] [--out DIR]\n`);
    return 2;
  }
  const out = resolve(arg('--out') ?? 'bench-profiles');
  mkdirSync(out, { recursive: true });
  const before = new Set(readdirSync(out));
  jettyNodeFlags.push('--cpu-prof', '--cpu-prof-dir', out);
  const origin = await startOrigin();
  try {
    const t = await startTunnel(origin.port, transport);
    const roles = new Map([
      [t.edge.pid, 'edge'],
      [t.agent.pid, 'agent'],
    ]);
    process.stderr.write(`profile: ${scenario} over ${transport}\n`);
    try {
      await SCENARIOS[scenario](t);
    } finally {
      await stopTunnel(t);
    }
    const files = readdirSync(out).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
    if (!files.length) throw new Error(`no profile written to ${out}`);
    for (const f of files) {
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
      const pid = Number(f.split('.')[3]);
      const role = roles.get(pid) ?? `pid ${pid}`;
      process.stdout.write(`\n### ${role} (${transport}, ${scenario}): ${join(out, f)}\n\n`);
      process.stdout.write(`${topSelf(JSON.parse(readFileSync(join(out, f), 'utf8')) as CpuProfile).join('\n')}\n`);
    }
    return 0;
  } finally {
    await origin.proc.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`profile failed: ${String(err)}\n`);
    process.exit(1);
  },
);
