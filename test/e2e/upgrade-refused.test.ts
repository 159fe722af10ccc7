import { connect, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import type { Edge } from '../../src/edge/edge-server.js';
import { waitForEvent } from '../../src/wait.js';
import { startEdge, waitFor } from '../helpers/harness.js';
import { jetty, stopsAfterEach, type ProcessContext } from '../helpers/process.js';
import { suite } from '../helpers/suite.js';

interface Ctx extends ProcessContext {
  sockets: Socket[];
  edge?: Edge;
}

const test = suite<Ctx>('e2e/upgrade-refused');
stopsAfterEach(test);

test.before.each((ctx) => {
  ctx.sockets = [];
});

test.after.each(async (ctx) => {
  for (const s of ctx.sockets.splice(0)) s.destroy();
  await ctx.edge?.close();
  ctx.edge = undefined;
});

/** A raw connection to 127.0.0.1:`port` that has sent `text`; collects what it receives. */
async function dial(ctx: Ctx, port: number, text: string, allowHalfOpen = false): Promise<{ socket: Socket; received: () => string }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
  ctx.sockets.push(socket);
  socket.on('error', () => undefined);
  let got = '';
  socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
  await waitForEvent(socket, 'connect');
  socket.write(text);
  return { socket, received: () => got };
}

const upgrade = (host: string): string => `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: upgrade\r\nUpgrade: anything\r\n\r\nbytes of the new protocol`;

test('an Upgrade the edge refuses (its own host, a bad Host), reset by the client: the edge process lives on', async (ctx) => {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '']);
  ctx.started.push(edge);
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /))[1]);
  for (const host of [`localhost:${port}`, 'a b']) {
    // Reset at once (before the answer) and once the answer is in: both used to be an uncaught ECONNRESET.
    for (const afterAnswer of [false, true]) {
      // Half-open: the client does not answer the edge's FIN with its own, so the reset is what it sends.
      const { socket, received } = await dial(ctx, port, upgrade(host), true);
      if (afterAnswer) await waitFor(() => received().startsWith('HTTP/1.1 4') || edge.child.exitCode !== null, 5000, `the refusal for Host ${host}`);
      assert.is(edge.child.exitCode, null, `the edge exited: ${edge.stderr.slice(0, 500)}`);
      socket.resetAndDestroy();
      await waitFor(() => socket.destroyed, 5000, 'the reset');
    }
  }
  // A plain request afterwards: answered by the same, living process.
  const { received } = await dial(ctx, port, `GET / HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
  await waitFor(() => received().startsWith('HTTP/1.1 ') || edge.child.exitCode !== null, 5000, 'an answer after the resets');
  assert.is(edge.child.exitCode, null, `the edge exited: ${edge.stderr.slice(0, 500)}`);
});

test('a client that keeps its side open after a refused Upgrade is closed by the edge within header-timeout', async (ctx) => {
  const headerTimeoutMs = 300;
  ctx.edge = await startEdge({ limits: { headerTimeoutMs } });
  const port = ctx.edge.publicPort;
  const { socket, received } = await dial(ctx, port, upgrade(`localhost:${port}`), true);
  await waitFor(() => received().startsWith('HTTP/1.1 404'), 5000, 'the refusal');
  // The client trickles bytes and never closes: only the edge can end it. A write to a socket the edge
  // has closed is answered by a reset, which closes ours.
  await waitFor(() => {
    if (!socket.destroyed) socket.write('x');
    return socket.destroyed;
  }, headerTimeoutMs + 5000, 'the edge to close the refused connection');
});

test.run();
