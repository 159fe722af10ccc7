import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'uvu';
import type { Origin } from './harness.js';

/** How long kill() waits after SIGTERM before SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/** Every process a test started and that has not exited: none outlives the test run. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** bin/jetty.js of this checkout (tests run from dist/test/...). */
export const JETTY_BIN = fileURLToPath(new URL('../../../bin/jetty.js', import.meta.url));

export interface Running {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  /** Resolves with the first stdout line matching `re`; rejects on exit or after `timeoutMs`. */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL after KILL_GRACE_MS; resolves with the exit code. */
  kill(): Promise<number | null>;
}

/** Starts `jetty ...args` as a real process; logs are silenced unless the test asks. */
export function jetty(args: string[], env: Record<string, string> = {}): Running {
  return started(process.execPath, [JETTY_BIN, ...args], { env: { ...process.env, JETTY_LOG_LEVEL: 'warn', ...env } });
}

/**
 * Starts any program as a tracked process (killed at the end of the run if a test did not).
 * `detached`: in a process group of its own, which a test may signal as a terminal's Ctrl-C does.
 */
export function started(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; detached?: boolean } = {}): Running {
  const child = spawn(file, args, { env: options.env ?? process.env, cwd: options.cwd, detached: options.detached, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const run: Running = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    line(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          for (const l of run.stdout.split('\n')) {
            const m = re.exec(l);
            if (m) {
              cleanup();
              resolve(m);
              return true;
            }
          }
          return false;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no line ${re} within ${timeoutMs} ms; stdout=${run.stdout} stderr=${run.stderr}`));
        }, timeoutMs);
        const onExit = (): void => {
          if (!check()) {
            cleanup();
            reject(new Error(`exited before printing ${re}; stderr=${run.stderr}`));
          }
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          child.stdout!.off('data', check);
          child.off('exit', onExit);
        };
        if (check()) return;
        child.stdout!.on('data', check);
        child.once('exit', onExit);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const escalate = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        void run.exited.then(() => clearTimeout(escalate));
      }
      return run.exited;
    },
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  // Registered before line() listeners so run.stdout is current when they check.
  child.stdout!.prependListener('data', (d: string) => (run.stdout += d));
  child.stderr!.on('data', (d: string) => (run.stderr += d));
  return run;
}

/**
 * Whether a Debian tool a suite drives is installed (`tool -V`-style probe); when it is not, prints
 * the one line saying so (the suite then uses test.skip: a skip never counts as passed).
 */
export function hasTool(tool: string, probe: string[], suiteName: string): boolean {
  try {
    execFileSync(tool, probe, { stdio: 'ignore' });
    return true;
  } catch {
    process.stdout.write(`${suiteName}: skipped, ${tool} is not installed (apt-get install ${tool})\n`);
    return false;
  }
}

/** The context of a suite whose tests start jetty processes and an origin (stopsAfterEach). */
export interface ProcessContext {
  started: Running[];
  origin?: Origin;
}

/**
 * Hooks for such a suite: a fresh `started` list before each test; after it, every process it
 * started is stopped (by its handle) and its origin closed.
 */
export function stopsAfterEach<T extends ProcessContext>(test: Test<T>): void {
  test.before.each((ctx) => {
    ctx.started = [];
  });
  test.after.each(async (ctx) => {
    await Promise.all(ctx.started.map((r) => r.kill()));
    await ctx.origin?.close();
    ctx.origin = undefined;
  });
}
