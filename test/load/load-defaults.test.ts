import { execFile, execFileSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { startOrigin } from '../helpers/harness.js';
import { jetty } from '../helpers/process.js';
import { loadOrigin } from '../helpers/load.js';
import { suite } from '../helpers/suite.js';

const test = suite('load (default limits, wrk)');

function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk prints its version and exits 1.
    return (err as { status?: number }).status === 1;
  }
}

const WRK = hasWrk();
if (!WRK) process.stdout.write('load (default limits, wrk): skipped, wrk is not installed (apt-get install wrk)\n');

// Regression: with the per-address exchange cap applied to direct clients, `wrk -c50` from one address
// got 429s: each connection's next request was parsed while its previous exchange was still being
// released, so one address briefly held more exchanges than connections. (Node's own client is too
// slow between requests to show it; wrk is what users run.)
(WRK ? test : test.skip)('wrk -c50 from one address under the default limits: no non-2xx answer, no socket error', async () => {
  const origin = await startOrigin(loadOrigin);
  // Real processes: in one process the edge is too slow between requests to show the overlap.
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+)/))[1]);
  const agent = jetty(['http', String(origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'plain', '--transport', 'grpc']);
  try {
    await agent.line(/^Forwarding /);
    const out = await new Promise<string>((resolve, reject) =>
      execFile('wrk', ['-t1', '-c50', '-d2s', '-H', `Host: plain.localhost:${port}`, `http://127.0.0.1:${port}/small?i=1`], { timeout: 20_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    assert.ok(/requests in/.test(out), out);
    assert.not.match(out, /Non-2xx/);
    assert.not.match(out, /Socket errors/);
  } finally {
    await agent.kill();
    await edge.kill();
    await origin.close();
  }
});

test.run();
