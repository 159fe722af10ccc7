import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts `node ...args` for a benchmark (origin, edge, agent) and resolves with the first match of
 * `ready` on its stdout; rejects if it exits first. Logs stay at `env.JETTY_LOG_LEVEL` (warn unless set).
 */
export function startProcess(args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, JETTY_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ child, match: m });
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}
