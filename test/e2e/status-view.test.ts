import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as assert from 'uvu/assert';
import { startOrigin, waitFor } from '../helpers/harness.js';
import { hasTool, JETTY_BIN, jetty, stopsAfterEach, type ProcessContext } from '../helpers/process.js';
import { httpGet } from '../helpers/raw-http.js';
import { suite } from '../helpers/suite.js';

/** The wrapper that reports how the agent in the pane ended (test/helpers/record-exit.ts). */
const RECORD_EXIT = new URL('../helpers/record-exit.js', import.meta.url).pathname;
const exitFile = (ctx: { dir?: string }): string => join(ctx.dir!, 'agent-exit');

/**
 * The agent's live status view as a person sees it: the agent runs in a real terminal (a tmux pane
 * of 60 columns), the test reads the screen with `capture-pane`, resizes the window and presses
 * Ctrl-C with `send-keys`.
 */
const test = suite<ProcessContext & { socket?: string; dir?: string }>('e2e/status-view');
stopsAfterEach(test);

const run = promisify(execFile);

const TMUX = hasTool('tmux', ['-V'], 'e2e/status-view');

/** Most often the screen is read while waiting for it to change, ms. */
const CAPTURE_EVERY_MS = 100;

test.after.each(async (ctx) => {
  // The tmux server of this test only (its own socket): the agent in its pane gets SIGHUP.
  if (ctx.socket) await run('tmux', ['-L', ctx.socket, 'kill-server']).catch(() => undefined);
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  ctx.socket = ctx.dir = undefined;
});

// tmux's server is a daemon, not a child process.ts tracks: if this test process ends early (an
// uncaught error), its server goes with it instead of outliving the run.
process.once('exit', () => {
  try {
    execFileSync('tmux', ['-L', `jetty-test-${process.pid}`, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // No server was started, or it is gone already.
  }
});

function tmux(ctx: { socket?: string }, ...args: string[]): Promise<string> {
  return run('tmux', ['-L', ctx.socket!, ...args]).then((r) => r.stdout);
}

/** Waits until the pane's screen matches `re`; returns that screen. */
async function screenUntil(ctx: { socket?: string }, re: RegExp, what: string, timeoutMs = 10_000): Promise<string> {
  let screen = '';
  let last = 0;
  try {
    await waitFor(async () => {
      if (Date.now() - last < CAPTURE_EVERY_MS) return false;
      last = Date.now();
      screen = await tmux(ctx, 'capture-pane', '-p', '-t', 'view');
      return re.test(screen);
    }, timeoutMs, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}; the screen:\n${screen}`);
  }
  return screen;
}

/** Lines of a captured screen without the empty rows below the view. */
const rows = (screen: string): string[] => screen.replace(/\n+$/, '').split('\n');

// Each request used to print 9 log lines into the view, the header repeated every redraw at 60
// columns (a wrapped line scrolled the block), and "Edge RTT" was one discovery fetch (≈ 40 ms on
// loopback).
(TMUX ? test : test.skip)('in a 60-column tmux pane: no log line on the screen, one header, live RTT, resize, then Ctrl-C shows the drain countdown and exits 0', async (ctx) => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  ctx.origin = await startOrigin(async (req, res) => {
    if (req.url === '/slow') {
      res.write('first ');
      await released;
    }
    res.end('done');
  });
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--ping-interval', '200']);
  ctx.started.push(edge);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1]);
  ctx.dir = mkdtempSync(join(tmpdir(), 'jetty-view-'));
  ctx.socket = `jetty-test-${process.pid}`;
  // Logs at info (9 lines a request before) and the default log destination, in a temp folder of ours.
  const agent = `exec env TMPDIR=${ctx.dir} JETTY_LOG_LEVEL=info NO_COLOR=1 ${process.execPath} ${RECORD_EXIT} ${exitFile(ctx)} ${process.execPath} ${JETTY_BIN} http ${ctx.origin.port} --edge http://127.0.0.1:${port} --name view --grace-period 8000`;
  await tmux(ctx, 'new-session', '-d', '-s', 'view', '-x', '60', '-y', '24', agent, ';', 'set-option', '-t', 'view', 'remain-on-exit', 'on');

  let screen = await screenUntil(ctx, /Edge RTT\s+\d+\.\d ms/, 'the first RTT from the pings');
  const rtt = Number(/Edge RTT\s+(\d+\.\d) ms/.exec(screen)![1]);
  assert.ok(rtt < 1000, `loopback RTT ${rtt} ms`);
  for (let i = 1; i <= 3; i++) assert.is((await httpGet(port, 'view.localhost', `/page/${i}`)).body, 'done');
  screen = await screenUntil(ctx, /GET \/page\/3\s+200/, 'the third request in the view');
  // Several redraws later, still one block: one header, every line inside 60 columns, no log text.
  await screenUntil(ctx, /Session Status\s+online/, 'a redraw');
  screen = await tmux(ctx, 'capture-pane', '-p', '-t', 'view');
  assert.is(screen.match(/^Jetty /gm)?.length, 1, screen);
  assert.is(screen.match(/Session Status/g)?.length, 1, screen);
  for (const line of rows(screen)) assert.ok(line.length < 60, `too wide: "${line}"`);
  assert.not.match(screen, /"level"|INFO|request served|\(agent\)/);
  assert.match(screen, /Forwarding\s+http:\/\/view\.localhost:\d+/);
  assert.match(screen, /GET \/page\/1\s+200/);
  // The default log file: jetty-agent-PID.log in the temp folder (TMPDIR, ours here), named in the view.
  const logName = readdirSync(ctx.dir).find((f) => /^jetty-agent-\d+\.log$/.test(f));
  assert.ok(logName, 'the log file');
  const logFile = join(ctx.dir, logName!);
  assert.ok(screen.replace(/\n\s*/g, '').includes(logFile), `the view names ${logFile}`);

  await tmux(ctx, 'resize-window', '-t', 'view', '-x', '40', '-y', '20');
  screen = await screenUntil(ctx, /^Jetty {2,}\(Ctrl\+C to quit\)$/m, 'the header redrawn for 40 columns');
  assert.ok(rows(screen).every((line) => line.length < 40), screen);
  assert.is(screen.match(/^Jetty /gm)?.length, 1, screen);
  // Labels above their values: neither URL is cut.
  assert.ok(screen.includes(`http://view.localhost:${port}`) && screen.includes(`http://localhost:${ctx.origin.port}`), screen);

  const slow = httpGet(port, 'view.localhost', '/slow');
  // Awaited below; a failure before then must not become an unhandled rejection.
  slow.catch(() => undefined);
  await screenUntil(ctx, /Open exchanges\s+1/, 'the slow request open');
  await tmux(ctx, 'send-keys', '-t', 'view', 'C-c');
  screen = await screenUntil(ctx, /draining: 1 exchange left \(\d+ s\)/, 'the drain countdown');
  const first = Number(/left \((\d+) s\)/.exec(screen)![1]);
  assert.ok(first <= 8, screen);
  await screenUntil(ctx, new RegExp(`left \\((${Array.from({ length: first }, (_, i) => i).join('|')}) s\\)`), 'the countdown ticking');
  release();
  assert.equal(await slow, { status: 200, body: 'first done' });
  // How the agent ended, from the wrapper (tmux 3.3 leaves the status empty while it has not reaped it).
  await waitFor(() => existsSync(exitFile(ctx)), 10_000, 'the agent to exit');
  assert.is(readFileSync(exitFile(ctx), 'utf8'), '0 null\n', 'Ctrl-C exits 0 (code, signal)');
  // The terminal's own screen is back, and the log lines are in the file the view named.
  screen = await tmux(ctx, 'capture-pane', '-p', '-t', 'view');
  assert.not.match(screen, /Session Status/);
  const logged = readFileSync(logFile, 'utf8');
  assert.match(logged, /"path":"\/page\/2"/);
  assert.match(logged, /"msg":"leaving"/);
});

test.run();
