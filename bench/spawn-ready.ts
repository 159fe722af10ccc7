import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts `node ...args` (logs at warn, plus `env`) and resolves once its stdout matches `ready`, with the
 * match; rejects if it exits first. Shared by the bench scripts that run origin, edge and agent apart.
 * `stderr`: 'inherit' shows the child's warnings beside the bench's output.
 */
export function start(
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
  stderr: 'ignore' | 'inherit' = 'ignore',
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', stderr], env: { ...process.env, JETTY_LOG_LEVEL: 'warn', ...env } });
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
