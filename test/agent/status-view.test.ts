import { EventEmitter } from 'node:events';
import { suite } from '../helpers/suite.js';
import * as assert from 'uvu/assert';
import { backoffMs, RECONNECT_CAP_MS } from '../../src/agent/reconnect.js';
import type { Agent } from '../../src/agent/agent.js';
import { StatusView } from '../../src/agent/status-view.js';

const test = suite('agent/status-view');

/** `dropped`: a UDP tunnel's dropped replies (undefined: not a UDP tunnel). */
function fakeAgent(dropped?: number): Agent {
  return Object.assign(new EventEmitter(), {
    transport: 'grpc',
    url: 'http://demo.localhost:8080',
    rttMs: 1.25,
    stats: () => ({ openExchanges: 2 }),
    droppedDatagrams: () => dropped,
  }) as unknown as Agent;
}

function fakeOut(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const out = Object.assign(new EventEmitter(), { isTTY, text: '', write(s: string) {
    out.text += s;
    return true;
  } });
  return out as unknown as NodeJS.WriteStream & { text: string };
}

test('the live view shows URL, transport, RTT, open exchanges and recent requests; no colour without it', () => {
  const agent = fakeAgent();
  const view = new StatusView({ agent, origin: 'http://localhost:3000', out: fakeOut(true), color: false });
  agent.emit('request', { id: '1', method: 'GET', path: '/hello', status: 200, bytesIn: 0, bytesOut: 5, ms: 3.2 });
  const text = view.render().join('\n');
  view.abort();
  assert.match(text, /Forwarding\s+http:\/\/demo\.localhost:8080 -> http:\/\/localhost:3000/);
  assert.match(text, /Transport\s+grpc/);
  assert.match(text, /Edge RTT\s+1\.3 ms/);
  assert.match(text, /Open exchanges\s+2/);
  assert.match(text, /GET \/hello\s+200\s+3\.2 ms/);
  assert.not.match(text, /\x1b\[/);
  assert.not.match(text, /Dropped/, 'no UDP row for an HTTP tunnel');
});

test('a UDP tunnel shows the replies its agent dropped at its bounds', () => {
  const agent = fakeAgent(17);
  const view = new StatusView({ agent, origin: 'localhost:53', out: fakeOut(true), color: false });
  const text = view.render().join('\n');
  view.abort();
  assert.match(text, /Dropped replies\s+17/);
});

test('without a TTY, events become plain lines', () => {
  const agent = fakeAgent();
  const out = fakeOut(false);
  const view = new StatusView({ agent, origin: 'http://localhost:3000', out, color: true });
  agent.emit('reconnecting', 'lost the edge', 1500);
  agent.emit('connected', 'http://demo.localhost:8080', 'grpc', true);
  view.abort();
  assert.is(out.text, 'Reconnecting in 1.5 s: lost the edge\nReconnected over grpc: Forwarding http://demo.localhost:8080 -> http://localhost:3000\n');
});

// A request path (any client can send one) and an edge's reason reach the agent's terminal: escape
// sequences in them could clear the screen, fake lines, retitle the window or write to the clipboard.
test('escape sequences from the network are shown as text, never sent to the terminal', () => {
  const agent = fakeAgent();
  const out = fakeOut(false);
  const view = new StatusView({ agent, origin: 'http://localhost:3000', out, color: false });
  agent.emit('request', { id: '1', method: 'GET', path: '/\x1b[2J\x1b]52;c;cHduZWQ=\x07\x9b31m', status: 200, bytesIn: 0, bytesOut: 0, ms: 1 });
  agent.emit('reconnecting', 'edge says \x1b[1A\x1b[2KForwarding http://evil', 1000);
  const text = view.render().join('\n') + out.text;
  view.abort();
  assert.not.match(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  assert.match(text, /GET \/\\x1b\[2J\\x1b\]52;c;cHd/);
  assert.match(out.text, /edge says \\x1b\[1A\\x1b\[2KForwarding/);
});

test('render() fits any width: no line reaches the last column, values wrap below their label, the drain countdown shows what is left', () => {
  const agent = fakeAgent();
  const view = new StatusView({ agent, origin: 'http://localhost:3000', out: fakeOut(false), color: true, logFile: '/tmp/jetty-agent-1.log' });
  agent.emit('request', { id: '1', method: 'GET', path: `/${'x'.repeat(200)}`, status: 200, bytesIn: 0, bytesOut: 5, ms: 3.2 });
  view.draining(30_000);
  for (const columns of [120, 80, 60, 40, 20]) {
    const lines = view.render(columns, 24);
    // Colours cost no width.
    for (const line of lines) assert.ok(line.replace(/\x1b\[[0-9;]*m/g, '').length < columns, `${columns}: "${line}"`);
    assert.is(lines.filter((l) => l.includes('Jetty')).length, 1);
    assert.ok(lines.join(' ').replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').includes('draining: 2 exchanges left (30 s)'), lines.join('\n'));
  }
  assert.ok(view.render(40, 24).some((l) => l.trim() === 'http://demo.localhost:8080 ->'), 'the URL uncut at 40 columns');
  assert.ok(view.render(80, 8).length <= 7, 'the block fits the height');
  view.abort();
});

test('reconnect backoff doubles from 250 ms with full jitter and caps at 30 s', () => {
  assert.is(backoffMs(0, () => 1), 250);
  assert.is(backoffMs(3, () => 1), 2000);
  assert.is(backoffMs(20, () => 1), RECONNECT_CAP_MS);
  assert.is(backoffMs(20, () => 0), 0);
});

test.run();
