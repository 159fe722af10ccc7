import { printable } from '../printable.js';
import type { Agent } from './agent.js';
import type { RequestRecord } from './origin-proxy.js';

/** Requests remembered for the live view (fewer are shown when the terminal is short). */
const RECENT_REQUESTS = 10;
/** Redraw interval of the live view, ms (the drain countdown ticks with it). */
const REDRAW_MS = 500;
/** Terminal size assumed when the stream does not say. */
const DEFAULT_COLUMNS = 80;
const DEFAULT_ROWS = 24;
/** Width of the label column of the live view. */
const LABEL_CHARS = 16;
/** Narrower terminals get each label on its own line, its value below it indented by VALUE_INDENT. */
const NARROW_COLUMNS = 50;
const VALUE_INDENT = '  ';

// Terminal control: the alternate screen (the shell's screen comes back on exit, as with less or
// htop), cursor home, clear to the end of the line / of the screen, cursor hidden / shown.
const ENTER_ALT_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_ALT_SCREEN = '\x1b[?25h\x1b[?1049l';
const HOME = '\x1b[H';
const CLEAR_EOL = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';
/** One SGR sequence, the only control text the view writes itself (colours). */
const SGR = /^\x1b\[[0-9;]*m/;

export interface StatusViewInit {
  agent: Agent;
  /** What the tunnel forwards to, e.g. http://localhost:3000. */
  origin: string;
  out: NodeJS.WriteStream;
  /** ANSI colours (off when NO_COLOR is set). */
  color: boolean;
  /** Where the log lines go while the view is up (shown in it); absent: they are not redirected. */
  logFile?: string;
}

/**
 * Cuts `line` to `width` visible characters: SGR colour sequences cost nothing and are kept (a cut
 * line ends with a reset). A line never reaches the last column, so the terminal never wraps it: a
 * wrapped line is what made the whole block scroll and the header repeat on narrow terminals.
 */
export function fitLine(line: string, width: number): string {
  let out = '';
  let visible = 0;
  let i = 0;
  while (i < line.length) {
    const sgr = SGR.exec(line.slice(i));
    if (sgr) {
      out += sgr[0];
      i += sgr[0].length;
      continue;
    }
    if (visible >= width) return `${out}${out.includes('\x1b[') ? '\x1b[0m' : ''}`;
    out += line[i++];
    visible++;
  }
  return out;
}

/** `text` in lines of at most `width` characters, broken at spaces where it can be, else cut. */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const next = line === '' ? word : `${line} ${word}`;
    if (next.length <= width) {
      line = next;
      continue;
    }
    if (line !== '') lines.push(line);
    line = word;
    while (line.length > width) {
      lines.push(line.slice(0, width));
      line = line.slice(width);
    }
  }
  lines.push(line);
  return lines;
}

/**
 * The agent's console. On a TTY: a live screen like ngrok's (status, transport, URL, edge RTT, open
 * exchanges, recent requests) on the terminal's alternate screen, redrawn from the top-left every
 * REDRAW_MS and on resize, every line cut to the width and the block to the height. Elsewhere: plain
 * lines, one per event, for logs. Log lines must not reach the terminal while the live screen is up
 * (main.ts sends them to `logFile`). Everything that came from the network goes through printable():
 * a request path or an edge's reason must not drive the terminal.
 */
export class StatusView {
  private readonly recent: RequestRecord[] = [];
  private status = 'online';
  private timer: NodeJS.Timeout | undefined;
  /** Set by draining(): when the grace period ends (Date.now() clock). */
  private drainEndsAt: number | undefined;
  private screenUp = false;
  /** Settles once the view stopped drawing and listening (close() or abort()). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  private readonly onRequest = (r: RequestRecord): void => {
    this.recent.unshift(r);
    this.recent.length = Math.min(this.recent.length, RECENT_REQUESTS);
  };

  private readonly onReconnecting = (reason: string, delayMs: number): void => {
    this.status = `reconnecting in ${(delayMs / 1000).toFixed(1)} s (${printable(reason)})`;
    if (!this.live) this.init.out.write(`Reconnecting in ${(delayMs / 1000).toFixed(1)} s: ${printable(reason)}\n`);
  };

  private readonly onConnected = (url: string, transport: string): void => {
    this.status = 'online';
    if (!this.live) this.init.out.write(`Reconnected over ${printable(transport)}: Forwarding ${printable(url)} -> ${this.init.origin}\n`);
  };

  private readonly onResize = (): void => this.draw();
  /** Leaves the alternate screen even when the process ends without abort() (an uncaught fault). */
  private readonly onExit = (): void => this.leaveScreen();

  constructor(private readonly init: StatusViewInit) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    const { agent } = init;
    agent.on('request', this.onRequest);
    agent.on('reconnecting', this.onReconnecting);
    agent.on('connected', this.onConnected);
    if (this.live) {
      init.out.write(ENTER_ALT_SCREEN);
      this.screenUp = true;
      process.once('exit', this.onExit);
      init.out.on('resize', this.onResize);
      this.draw();
      this.timer = setInterval(() => this.draw(), REDRAW_MS);
      this.timer.unref();
    }
  }

  /** True when the view draws a live screen (a TTY), false when it prints lines. */
  get live(): boolean {
    return this.init.out.isTTY === true;
  }

  /** The agent is leaving (the first Ctrl-C): show what is left and the grace period counting down. */
  draining(graceMs: number): void {
    this.drainEndsAt = Date.now() + graceMs;
    this.draw();
  }

  private paint(code: string, text: string): string {
    return this.init.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  /** The session status and its colour code. */
  private statusText(open: number): [text: string, color: string] {
    if (this.drainEndsAt !== undefined) {
      const left = Math.max(0, Math.ceil((this.drainEndsAt - Date.now()) / 1000));
      return [`draining: ${open} exchange${open === 1 ? '' : 's'} left (${left} s)`, '33'];
    }
    return this.status === 'online' ? ['online', '32'] : [this.status, '33'];
  }

  /** The live screen as lines, cut to `columns` × `rows` (the tests read it through this). */
  render(columns = DEFAULT_COLUMNS, rows = DEFAULT_ROWS): string[] {
    const a = this.init.agent;
    const open = a.stats().openExchanges;
    // A UDP tunnel's replies dropped at the agent's bounds (undefined for other tunnels).
    const dropped = a.droppedDatagrams();
    // A value too long for the line continues below its label (a cut URL or countdown is no use);
    // below NARROW_COLUMNS the labels take lines of their own, the values the whole width.
    const narrow = columns < NARROW_COLUMNS;
    const indent = narrow ? VALUE_INDENT : ''.padEnd(LABEL_CHARS);
    const row = (k: string, v: string, color?: string): string[] => {
      const parts = wrapWords(v, Math.max(8, columns - 1 - indent.length)).map((part) => `${indent}${color ? this.paint(color, part) : part}`);
      return narrow ? [k, ...parts] : [`${k.padEnd(LABEL_CHARS)}${parts[0].slice(LABEL_CHARS)}`, ...parts.slice(1)];
    };
    const rtt = a.rttMs === undefined ? 'measuring (after the first ping)' : `${a.rttMs.toFixed(1)} ms`;
    const quit = this.drainEndsAt === undefined ? '(Ctrl+C to quit)' : '(Ctrl+C again: stop now)';
    const [status, statusColor] = this.statusText(open);
    const lines = [
      `${this.paint('1', 'Jetty')}${' '.repeat(Math.max(1, columns - 6 - quit.length))}${quit}`,
      '',
      ...row('Session Status', status, statusColor),
      ...row('Transport', printable(a.transport)),
      ...row('Forwarding', `${printable(a.url)} -> ${this.init.origin}`),
      ...row('Edge RTT', rtt),
      ...row('Open exchanges', String(open)),
      ...(dropped === undefined ? [] : row('Dropped replies', String(dropped))),
      ...(this.init.logFile ? row('Logs', printable(this.init.logFile)) : []),
      '',
      'HTTP Requests',
      '-------------',
    ];
    // The request column takes what the status and time columns leave.
    const requestChars = Math.max(12, Math.min(60, columns - 22));
    for (const r of this.recent.slice(0, Math.max(0, rows - 1 - lines.length))) {
      const status = r.err ? this.paint('31', `${r.status || 'ERR'} ${printable(r.err)}`) : String(r.status);
      lines.push(`${printable(`${r.method} ${r.path}`).slice(0, requestChars).padEnd(requestChars + 1)}${status.padEnd(8)} ${r.ms.toFixed(1)} ms`);
    }
    return lines.slice(0, Math.max(1, rows - 1)).map((l) => fitLine(l, columns - 1));
  }

  private draw(): void {
    if (!this.screenUp) return;
    const { out } = this.init;
    const lines = this.render(out.columns || DEFAULT_COLUMNS, out.rows || DEFAULT_ROWS);
    out.write(`${HOME}${lines.map((l) => `${l}${CLEAR_EOL}`).join('\n')}${CLEAR_BELOW}`);
  }

  private leaveScreen(): void {
    if (!this.screenUp) return;
    this.screenUp = false;
    this.init.out.write(LEAVE_ALT_SCREEN);
  }

  /** Stops drawing and listening to the agent. Nothing to finish: the same as abort(). */
  async close(): Promise<void> {
    this.abort();
    await this.closed;
  }

  /** Stops drawing and listening to the agent at once, and gives the terminal its screen back. Idempotent. */
  abort(_err?: Error): void {
    clearInterval(this.timer);
    this.leaveScreen();
    const { agent, out } = this.init;
    out.off('resize', this.onResize);
    process.off('exit', this.onExit);
    agent.off('request', this.onRequest);
    agent.off('reconnecting', this.onReconnecting);
    agent.off('connected', this.onConnected);
    this.resolveClosed();
  }
}
