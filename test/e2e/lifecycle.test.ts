import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import * as assert from 'uvu/assert';
import { loggerOptions } from '../../src/logger.js';
import { patternBytes, send, sha256, startAgent, startEdge, startOrigin, waitFor } from '../helpers/harness.js';
import { jetty } from '../helpers/process.js';
import { RawGrpcAgent } from '../helpers/raw-grpc-agent.js';
import { outcomeOf } from '../helpers/steady-load.js';
import { suite } from '../helpers/suite.js';

const test = suite('e2e/lifecycle');

/** A logger whose JSON lines land in `lines`, parsed. */
function capture(name: string): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino(loggerOptions('info', name), sink), lines };
}

test('the request id is one value in the edge log line, the agent log line and the origin request', async () => {
  let seen: string | undefined;
  const origin = await startOrigin((req, res) => {
    seen = String(req.headers['x-request-id']);
    res.end('ok');
  });
  const edgeLog = capture('edge');
  const agentLog = capture('agent');
  const edge = await startEdge({ logger: edgeLog.logger });
  const agent = await startAgent(edge, origin.url, 'ids', { logger: agentLog.logger });
  try {
    assert.is((await send(edge, 'ids', '/traced')).res.statusCode, 200);
    await waitFor(() => edgeLog.lines.some((l) => l.path === '/traced') && agentLog.lines.some((l) => l.path === '/traced'), 5000, 'both log lines');
    const onEdge = edgeLog.lines.find((l) => l.path === '/traced')!;
    const onAgent = agentLog.lines.find((l) => l.path === '/traced')!;
    assert.type(onEdge.id, 'string');
    assert.is(onAgent.id, onEdge.id);
    assert.is(seen, onEdge.id);
  } finally {
    await agent.close();
    await edge.close();
    await origin.close();
  }
});

test('--ws-mask random: bodies cross both ways intact with masked frames', async () => {
  const origin = await startOrigin((req, res) => req.pipe(res));
  const edge = await startEdge();
  const agent = await startAgent(edge, origin.url, 'masked', { transport: 'websocket', wsMask: 'random' });
  try {
    const body = patternBytes(3 * 1024 * 1024, 9);
    const { res, body: echoed } = await send(edge, 'masked', '/echo', { method: 'POST', body });
    assert.is(res.statusCode, 200);
    assert.is(sha256(echoed), sha256(body));
  } finally {
    await agent.close();
    await edge.close();
    await origin.close();
  }
});

test('an agent that never opens the stream an Open asks for: 504 ERR_AGENT_TIMEOUT after the open timeout', async () => {
  const edge = await startEdge({ openTimeoutMs: 300 });
  // Registered, but opens no ForwardHTTP stream: every exchange needs an Open that is never answered.
  const raw = new RawGrpcAgent(`127.0.0.1:${edge.grpcPort}`);
  try {
    const reg = raw.register({ name: 'mute', version: 'test' });
    await reg.first;
    const started = Date.now();
    const { res } = await send(edge, 'mute', '/');
    assert.is(res.statusCode, 504);
    assert.is(res.headers['x-jetty-error'], 'ERR_AGENT_TIMEOUT');
    assert.ok(Date.now() - started >= 250, 'answered before the open timeout');
    await waitFor(() => edge.stats().openExchanges === 0, 2000, 'the exchange released');
  } finally {
    raw.close();
    await edge.close();
  }
});

test('grace-period expiry: an exchange still running when it ends is cut, and the edge exits 0', async () => {
  const held = new Set<import('node:http').ServerResponse>();
  const origin = await startOrigin((_req, res) => {
    res.write('partial');
    held.add(res);
  });
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--grace-period', '300'], { JETTY_LOG_LEVEL: 'info' });
  const port = Number((await edge.line(/^Jetty edge on http:\/\/localhost:(\d+)/))[1]);
  const agent = jetty(['http', String(origin.port), '--edge', `http://127.0.0.1:${port}`, '--name', 'slow']);
  try {
    await agent.line(/^Forwarding /);
    const outcome = outcomeOf(port, 'slow.localhost', '/');
    await waitFor(() => held.size === 1, 5000, 'the request to reach the origin');
    edge.child.kill('SIGTERM');
    assert.is(await outcome, 'cut');
    assert.is(await edge.exited, 0);
    assert.match(edge.stderr, /grace period over/);
  } finally {
    for (const res of held) res.destroy();
    await agent.kill();
    await edge.kill();
    await origin.close();
  }
});

test.run();
