import { printable } from '../printable.js';
import type { Agent } from './agent.js';
import type { RequestRecord } from './origin-proxy.js';

/** Requests shown in the live view. */
const RECENT_REQUESTS = 10;
/** Redraw interval of the live view, ms. */
const REDRAW_MS = 500;

export interface StatusViewInit {
  agent: Agent;
  /** What the tunnel forwards to, e.g. http://localhost:3000. */
  origin: string;
  out: NodeJS.WriteStream;
  /** ANSI colours (off when NO_COLOR is set). */
  color: boolean;
}

/**
 * The agent's console. On a TTY: a live block like ngrok's (status, transport, URL, edge RTT, open
 * exchanges, recent requests) redrawn in place. Elsewhere: plain lines, one per event, for logs.
 * Everything that came from the network goes through printable(): a request path or an edge's reason
 * must not drive the terminal.
 */
export class StatusView {
  private readonly recent: RequestRecord[] = [];
  private status = 'online';
  private timer: NodeJS.Timeout | undefined;
  private drawnLines = 0;
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

  constructor(private readonly init: StatusViewInit) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    const { agent } = init;
    agent.on('request', this.onRequest);
    agent.on('reconnecting', this.onReconnecting);
    agent.on('connected', this.onConnected);
    if (this.live) {
      this.timer = setInterval(() => this.draw(), REDRAW_MS);
      this.timer.unref();
    }
  }

  private get live(): boolean {
    return this.init.out.isTTY === true;
  }

  private paint(code: string, text: string): string {
    return this.init.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  /** The live block as lines (exported shape for tests through render()). */
  render(): string[] {
    const a = this.init.agent;
    const row = (k: string, v: string): string => `${k.padEnd(18)}${v}`;
    const lines = [
      this.paint('1', 'Jetty') + '                                  (Ctrl+C to quit)',
      '',
      row('Session Status', this.status === 'online' ? this.paint('32', 'online') : this.paint('33', this.status)),
      row('Transport', printable(a.transport)),
      row('Forwarding', `${printable(a.url)} -> ${this.init.origin}`),
      row('Edge RTT', `${a.rttMs.toFixed(1)} ms`),
      row('Open exchanges', String(a.stats().openExchanges)),
      '',
      'HTTP Requests',
      '-------------',
    ];
    for (const r of this.recent) {
      const status = r.err ? this.paint('31', `${r.status || 'ERR'} ${printable(r.err)}`) : String(r.status);
      lines.push(`${printable(`${r.method} ${r.path}`).slice(0, 40).padEnd(42)}${status.padEnd(8)} ${r.ms.toFixed(1)} ms`);
    }
    return lines;
  }

  private draw(): void {
    const lines = this.render();
    // Move up over the previous block, clear it, draw the new one.
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}F` : '';
    this.init.out.write(`${up}\x1b[J${lines.join('\n')}\n`);
    this.drawnLines = lines.length;
  }

  /** Stops drawing and listening to the agent. Nothing to finish: the same as abort(). */
  async close(): Promise<void> {
    this.abort();
    await this.closed;
  }

  /** Stops drawing and listening to the agent at once. Idempotent. */
  abort(_err?: Error): void {
    clearInterval(this.timer);
    const { agent } = this.init;
    agent.off('request', this.onRequest);
    agent.off('reconnecting', this.onReconnecting);
    agent.off('connected', this.onConnected);
    this.resolveClosed();
  }
}
