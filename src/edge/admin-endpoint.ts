import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EdgeMetrics } from './metrics.js';

/** What the admin endpoint reports of the edge. */
export interface AdminView {
  readonly metrics: EdgeMetrics;
  stats(): { draining: boolean; sessions: number; openExchanges: number };
}

/** The admin listener's requests: /livez, /readyz (503 while draining, JSON counts) and /metrics (Prometheus). */
export async function serveAdmin(view: AdminView, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/livez') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else if (path === '/readyz') {
    const stats = view.stats();
    res.writeHead(stats.draining ? 503 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: stats.draining ? 'draining' : 'ready', agents: stats.sessions, exchanges: stats.openExchanges }));
  } else if (path === '/metrics') {
    const body = await view.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': view.metrics.registry.contentType }).end(body);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}
