import type { ServerResponse } from 'node:http';
import * as assert from 'uvu/assert';
import { send, startAgent, startEdge, startOrigin, waitFor, within } from '../helpers/harness.js';
import { suite } from '../helpers/suite.js';

const test = suite('edge/edge-server');

// Guards against the drain that polled the exchange count every 50 ms: it ended up to one tick after
// the last exchange, and the grace period was counted in ticks.
test('drain() closes the edge as soon as the last exchange ends, not on a timer tick', async () => {
  const held: ServerResponse[] = [];
  const origin = await startOrigin((_req, res) => void held.push(res));
  const edge = await startEdge({ gracePeriodMs: 30_000 });
  const agent = await startAgent(edge, origin.url, 'drained');
  try {
    const inFlight = send(edge, 'drained', '/held');
    await waitFor(() => held.length === 1 && edge.stats().openExchanges === 1, 5_000, 'the exchange to reach the origin');
    let closeCalledAt = 0;
    const close = edge.close.bind(edge);
    edge.close = () => {
      closeCalledAt ||= performance.now();
      return close();
    };
    const draining = edge.drain();
    // Several ticks of the old loop: the drain must still be waiting for the exchange.
    await new Promise((r) => setTimeout(r, 120));
    assert.is(closeCalledAt, 0, 'the drain closed the edge with an exchange in flight');
    held[0]!.end('done');
    const { body } = await inFlight;
    const responseEnded = performance.now();
    assert.is(body.toString(), 'done');
    await within(draining, 5_000, 'the drain');
    assert.ok(closeCalledAt > 0);
    assert.ok(closeCalledAt - responseEnded < 20, `the edge closed ${Math.round(closeCalledAt - responseEnded)} ms after the last exchange`);
  } finally {
    await agent.close();
    await edge.close();
    await origin.close();
  }
});

test('drain() with no exchange in flight closes at once', async () => {
  const edge = await startEdge({ gracePeriodMs: 30_000 });
  await within(edge.drain(), 1_000, 'the drain');
  assert.is(edge.stats().sessions, 0);
});

test.run();
