import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../helpers/free-port.js';
import { hasTool, JETTY_BIN, started, stopsAfterEach, type ProcessContext, type Running } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

/**
 * The README's quick start, run as written: its commands are read from README.md between the
 * quick-start markers and run through `sh` in an empty temporary folder, with `jetty` on the PATH (a
 * link to this checkout's bin/jetty.js, which is what `npm install -g jetty-tunnel` or `npm link`
 * give). Only the ports change: the README's 8080 and 3000 become free ports, and the edge's other
 * listeners move off their defaults through JETTY_* variables (the commands themselves are untouched).
 */
const test = suite<ProcessContext & { dir?: string }>('e2e/readme');
stopsAfterEach(test);

const README = new URL('../../../README.md', import.meta.url);

const CURL = hasTool('curl', ['--version'], 'e2e/readme');

test.after.each((ctx) => {
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  ctx.dir = undefined;
});

/** The shell lines of the quick start: commands (comments cut) and `# Forwarding …` expectations. */
export function quickStart(readme: string): { commands: string[]; forwarding: string } {
  const block = /<!-- quick-start:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- quick-start:end -->/.exec(readme);
  if (!block) throw new Error('README.md has no quick-start block between its markers');
  const lines = block[1].split('\n').map((l) => l.trim()).filter(Boolean);
  const forwarding = lines.find((l) => l.startsWith('# Forwarding '))?.slice(2);
  if (!forwarding) throw new Error('the quick start does not show the Forwarding line');
  return { commands: lines.filter((l) => !l.startsWith('#')).map((l) => l.replace(/\s+#.*$/, '')), forwarding };
}

/** The first line each long-running command of the quick start prints once it is ready. */
const READY: Array<[RegExp, RegExp]> = [
  [/^jetty edge\b/, /^Jetty edge on /],
  [/^jetty demo-origin\b/, /^Demo origin on /],
  [/^jetty http\b/, /^Forwarding /],
];

(CURL ? test : test.skip)('the quick start, run as written in a temporary folder, answers through the tunnel', async (ctx) => {
  const { commands, forwarding } = quickStart(readFileSync(README, 'utf8'));
  assert.equal(commands.map((c) => c.split(' ').slice(0, 2).join(' ')), ['jetty edge', 'jetty demo-origin', 'jetty http', 'curl http://demo.localhost:8080/hello']);
  const [edgePort, originPort] = [await freePort(), await freePort()];
  const ports = (text: string): string => text.replace(/\b8080\b/g, String(edgePort)).replace(/\b3000\b/g, String(originPort));
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-readme-'));
  symlinkSync(JETTY_BIN, join(ctx.dir, 'jetty'));
  const env = {
    ...process.env,
    PATH: `${ctx.dir}:${process.env.PATH}`,
    JETTY_LOG_LEVEL: 'warn',
    JETTY_LISTEN: `127.0.0.1:${edgePort}`,
    JETTY_EDGE: `http://127.0.0.1:${edgePort}`,
    JETTY_GRPC_LISTEN: '127.0.0.1:0',
    JETTY_ADMIN_LISTEN: '',
  };
  let answer: Running | undefined;
  for (const command of commands.map(ports)) {
    const ready = READY.find(([re]) => re.test(command))?.[1];
    // `exec`: the process the test tracks (and stops) is the command itself, not a shell around it.
    const run = started('sh', ['-c', ready ? `exec ${command}` : command], { env, cwd: ctx.dir });
    ctx.started.push(run);
    if (ready) {
      const line = await run.line(ready, 15_000);
      if (ready.source.includes('Forwarding')) assert.is(line.input, ports(forwarding));
    } else {
      answer = run;
      assert.is(await run.exited, 0, run.stderr);
    }
  }
  assert.match(answer!.stdout, /^Hello from Jetty's demo origin/);
  assert.match(answer!.stdout, /^GET \/hello HTTP\/1\.1$/m);
  // Field names are case-insensitive: the agent's undici client sends `host` (first), Node's client kept `Host`.
  assert.match(answer!.stdout, new RegExp(`^host: demo\\.localhost:${edgePort}$`, 'mi'));
});

test('the quick start block is found and read: four commands and the Forwarding line', () => {
  const { commands, forwarding } = quickStart(readFileSync(README, 'utf8'));
  assert.is(commands.length, 4);
  assert.is(forwarding, 'Forwarding http://demo.localhost:8080 -> http://localhost:3000');
});

test.run();
