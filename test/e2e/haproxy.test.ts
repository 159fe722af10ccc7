import { createServer, type Server } from 'node:http';
import * as assert from 'uvu/assert';
import { freePorts } from '../helpers/free-port.js';
import { Haproxy } from '../helpers/haproxy.js';
import { suite } from '../helpers/suite.js';

/**
 * The load balancer the cluster tests put in front of several edges: three plain HTTP servers on
 * 127.0.0.11–13 behind it, one request per connection, and every server gets its share (round-robin),
 * so a test that runs a cluster behind it really sends most requests to an edge not holding the tunnel.
 */
const test = suite('e2e/haproxy');
const HAPROXY = Haproxy.available('e2e/haproxy');

(HAPROXY ? test : test.skip)('round-robin over three loopback addresses; a stopped server is skipped', async () => {
  const [port, front] = await freePorts(2);
  const hosts = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];
  const servers: Server[] = [];
  for (const host of hosts) {
    const srv = createServer((_req, res) => res.end(host));
    await new Promise<void>((resolve) => srv.listen(port, host, resolve));
    servers.push(srv);
  }
  const lb = await Haproxy.start([{ port: front, servers: hosts.map((h) => `${h}:${port}`) }]);
  const ask = async (): Promise<string> => (await fetch(`http://127.0.0.1:${front}/`, { headers: { connection: 'close' } })).text();
  try {
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) seen.push(await ask());
    // Round-robin, give or take the order in which the health checks first marked each server up.
    for (const host of hosts) assert.ok(seen.filter((h) => h === host).length >= 3, seen.join(' '));
    servers[0].closeAllConnections();
    await new Promise<void>((resolve) => servers[0].close(() => resolve()));
    for (let i = 0; i < 6; i++) assert.ok(['127.0.0.12', '127.0.0.13'].includes(await ask()));
  } finally {
    await lb.stop();
    for (const srv of servers) {
      srv.closeAllConnections();
      srv.close();
    }
  }
});

test.run();
