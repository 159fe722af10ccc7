import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import type { Agent } from '../../src/agent/agent.js';
import type { Edge } from '../../src/edge/edge-server.js';
import { startAgent, startEdge, waitFor } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';
import { UpgradeOrigin } from '../helpers/upgrade-suite.js';

/** Debian's chromium; playwright-core drives it over the DevTools protocol. */
const CHROMIUM = '/usr/bin/chromium';
const NAME = 'browser';

/**
 * The page: opens a WebSocket back to the host that served it (through the tunnel), sends a text and a
 * binary message, and puts what came back, with the subprotocol, into the title.
 */
const PAGE = `<!doctype html><title>loading</title><script>
const ws = new WebSocket('ws://' + location.host + '/echo', ['chat']);
ws.binaryType = 'arraybuffer';
const got = [];
ws.onopen = () => { ws.send('hello from the browser'); ws.send(new Uint8Array([1, 2, 3, 250])); };
ws.onmessage = (e) => {
  got.push(typeof e.data === 'string' ? e.data : Array.from(new Uint8Array(e.data)).join(','));
  if (got.length === 2) { document.title = 'done ' + ws.protocol + ' | ' + got.join(' | '); ws.close(1000); }
};
ws.onerror = () => { document.title = 'error'; };
</script>`;

interface Ctx {
  edge: Edge;
  agent: Agent;
  origin: UpgradeOrigin;
}

const test = suite<Ctx>('e2e/upgrade-browser');

if (!existsSync(CHROMIUM)) {
  console.log(`e2e/upgrade-browser: skipped, no ${CHROMIUM} (apt-get install chromium)`);
  test.skip('a page served through the tunnel opens a WebSocket back through it (headless Chromium)', () => undefined);
} else {
  test.before(async (ctx) => {
    ctx.origin = await UpgradeOrigin.start((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(PAGE);
    });
    ctx.edge = await startEdge();
    ctx.agent = await startAgent(ctx.edge, ctx.origin.url, NAME);
  });

  test.after(async (ctx) => {
    await ctx.agent.close();
    await ctx.edge.close();
    await ctx.origin.close();
  });

  test('a page served through the tunnel opens a WebSocket back through it (headless Chromium)', async (ctx) => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'jetty-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // *.localhost is loopback in Chromium already; the edge listens on 127.0.0.1 only, not ::1.
        '--host-resolver-rules=MAP *.localhost 127.0.0.1',
      ],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://${NAME}.localhost:${ctx.edge.publicPort}/`, { timeout: 20_000 });
      await page.waitForFunction(() => document.title.startsWith('done') || document.title === 'error', undefined, { timeout: 20_000 });
      assert.is(await page.title(), 'done chat | hello from the browser | 1,2,3,250');
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
    await waitFor(() => ctx.edge.stats().openExchanges === 0, 5000, 'the exchanges to end');
  });
}

test.run();
