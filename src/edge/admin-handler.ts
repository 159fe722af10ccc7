import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EdgeMetrics } from './metrics.js';

/** What /readyz reports. */
export interface AdminStats {
  sessions: number;
  openExchanges: number;
  draining: boolean;
}

/** The admin listener's requests: /livez, /readyz (503 while draining, JSON counts) and /metrics (Prometheus). */
export function adminHandler(stats: () => AdminStats, metrics: EdgeMetrics): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const s = stats();
      res.writeHead(s.draining ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: s.draining ? 'draining' : 'ready', agents: s.sessions, exchanges: s.openExchanges }));
    } else if (path === '/metrics') {
      const body = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}
