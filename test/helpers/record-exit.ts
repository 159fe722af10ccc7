/**
 * `node record-exit.js FILE CMD ARGS…`: runs CMD in the foreground of the same terminal (the same
 * process group, so a Ctrl-C typed there reaches it as it would a person's) and appends how it ended,
 * `CODE SIGNAL` (`0 null` for a clean exit), to FILE, then exits with its code. tmux 3.3 cannot say
 * this reliably: it marks a pane dead when its terminal closes and leaves the status empty both
 * before it has reaped the process and after a death by signal.
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const [file, cmd, ...args] = process.argv.slice(2);
const child = spawn(cmd, args, { stdio: 'inherit' });
// The terminal's Ctrl-C is the child's to handle; this process only reports.
process.on('SIGINT', () => undefined);
child.on('exit', (code, signal) => {
  appendFileSync(file, `${code} ${signal}\n`);
  process.exit(code ?? 1);
});
