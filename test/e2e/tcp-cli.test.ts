import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from '../helpers/suite.js';
import { jetty, type Running } from '../helpers/process.js';
import { freePorts } from '../helpers/free-port.js';
import { dial, endingOf, portOf, readUntilEnd, TcpOriginServer, hasCommand } from '../helpers/tcp-tools.js';
import { waitFor } from '../helpers/harness.js';

interface Ctx {
  started: Running[];
  origin: TcpOriginServer;
  cleanup: Array<() => Promise<unknown> | void>;
}

const test = suite<Ctx>('e2e/tcp-cli');

test.before.each(async (ctx) => {
  ctx.started = [];
  ctx.cleanup = [];
  ctx.origin = await TcpOriginServer.start();
});

test.after.each(async (ctx) => {
  // Only processes this test started, by their handles (PIDs).
  await Promise.all(ctx.started.map((r) => r.kill()));
  for (const c of ctx.cleanup.splice(0)) await c();
  await ctx.origin.close();
});

/** A real edge with `tcpPorts`; resolves with its public URL. */
async function edgeProcess(ctx: Ctx, tcpPorts: string, extra: string[] = []): Promise<string> {
  const edge = jetty(['edge', '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--admin-listen', '', '--tcp-ports', tcpPorts, ...extra]);
  ctx.started.push(edge);
  const m = await edge.line(/^Jetty edge on http:\/\/localhost:(\d+) /);
  await edge.line(/^TCP tunnels on ports /);
  return `http://127.0.0.1:${m[1]}`;
}

/** A real `jetty tcp` agent; resolves with it and its public port once it printed Forwarding. */
async function tcpAgent(ctx: Ctx, edge: string, args: string[]): Promise<{ agent: Running; port: number }> {
  const agent = jetty(['tcp', ...args, '--edge', edge]);
  ctx.started.push(agent);
  const m = await agent.line(/^Forwarding (tcp:\/\/localhost:\d+) -> /);
  return { agent, port: portOf(m[1]) };
}

test('jetty tcp prints Forwarding tcp://DOMAIN:PORT -> host:port; a taken or outside port exits 1 with the reason', async (ctx) => {
  const [p1, p2, outside] = await freePorts(3);
  const edge = await edgeProcess(ctx, `${p1},${p2}`);
  const { agent, port } = await tcpAgent(ctx, edge, [String(ctx.origin.port), '--remote-port', String(p2)]);
  assert.is(port, p2);
  assert.match(agent.stdout, `Forwarding tcp://localhost:${p2} -> localhost:${ctx.origin.port}`);
  const client = await dial(port);
  const echoed = readUntilEnd(client);
  client.end('through a real agent');
  assert.is((await echoed).toString(), 'through a real agent');

  const taken = jetty(['tcp', String(ctx.origin.port), '--remote-port', String(p2), '--edge', edge]);
  ctx.started.push(taken);
  assert.is(await taken.exited, 1);
  assert.match(taken.stderr, `port ${p2} is in use by another agent`);

  const far = jetty(['tcp', String(ctx.origin.port), '--remote-port', String(outside), '--edge', edge]);
  ctx.started.push(far);
  assert.is(await far.exited, 1);
  assert.match(far.stderr, `port ${outside} is outside this edge's tcp-ports`);
});

test('an agent killed (SIGKILL) mid-connection: the public connection is reset', async (ctx) => {
  const [p] = await freePorts(1);
  const edge = await edgeProcess(ctx, String(p));
  const { agent, port } = await tcpAgent(ctx, edge, [String(ctx.origin.port)]);
  const client = await dial(port);
  client.write('hello');
  await once(client, 'data');
  const ending = endingOf(client);
  agent.child.kill('SIGKILL');
  assert.is(await ending, 'reset');
});

/** The PROXY header a test origin read before the payload: v1's line, or v2's fields. */
function readProxyHeader(socket: Socket): Promise<{ text?: string; v2?: { family: number; src: string; dst: string; sport: number; dport: number }; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.subarray(0, 6).toString('latin1') === 'PROXY ') {
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        socket.off('data', onData);
        resolve({ text: buf.subarray(0, eol).toString('latin1'), rest: buf.subarray(eol + 2) });
      } else if (buf.length >= 16) {
        const len = buf.readUInt16BE(14);
        if (buf.length < 16 + len) return;
        socket.off('data', onData);
        if (buf.subarray(0, 12).toString('hex') !== '0d0a0d0a000d0a515549540a' || buf[12] !== 0x21) return reject(new Error('not a PROXY v2 header'));
        const b = buf.subarray(16, 16 + len);
        resolve({ v2: { family: buf[13], src: [...b.subarray(0, 4)].join('.'), dst: [...b.subarray(4, 8)].join('.'), sport: b.readUInt16BE(8), dport: b.readUInt16BE(10) }, rest: buf.subarray(16 + len) });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

test('--proxy-protocol v1 and v2: the origin reads the public client address and port before the bytes', async (ctx) => {
  const [p1, p2] = await freePorts(2);
  const edge = await edgeProcess(ctx, `${p1},${p2}`);
  for (const version of ['v1', 'v2']) {
    const header = new Promise<Awaited<ReturnType<typeof readProxyHeader>>>((resolve, reject) => {
      ctx.origin.onConnection = (s) => {
        s.end();
        // The header, then the client's bytes up to its FIN.
        readProxyHeader(s).then(async (h) => ({ ...h, rest: Buffer.concat([h.rest, await readUntilEnd(s)]) })).then(resolve, reject);
      };
    });
    const { port } = await tcpAgent(ctx, edge, [String(ctx.origin.port), '--proxy-protocol', version]);
    const client = await dial(port);
    // Read now: the origin ends at once, and a closed socket no longer knows its port.
    const clientPort = client.localPort;
    client.end('payload');
    const got = await header;
    if (version === 'v1') assert.is(got.text, `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${port}`);
    else assert.equal(got.v2, { family: 0x11, src: '127.0.0.1', dst: '127.0.0.1', sport: clientPort, dport: port });
    assert.is(got.rest.toString(), 'payload');
    client.destroy();
  }
});

/** Runs a command with `input` on its stdin; resolves with its stdout (rejects on a non-zero exit). */
function run(cmd: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 10_000, maxBuffer: 4 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    // A command that does not read its stdin may exit before the write: EPIPE is no failure here.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

const REDIS = hasCommand('redis-server') && hasCommand('redis-cli');
if (!REDIS) process.stdout.write('e2e/tcp-cli: redis test skipped, redis-server / redis-cli are not installed (apt-get install redis-server redis-tools)\n');

(REDIS ? test : test.skip)('a real client through the tunnel: redis-cli against redis-server', async (ctx) => {
  const [redisPort, p] = await freePorts(2);
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  ctx.cleanup.push(async () => {
    if (redis.exitCode === null) {
      redis.kill('SIGTERM');
      await once(redis, 'exit');
    }
  });
  await waitFor(() => run('redis-cli', ['-p', String(redisPort), 'PING']).then((out) => out.trim() === 'PONG', () => false), 10_000, 'redis-server');
  const edge = await edgeProcess(ctx, String(p));
  const { port } = await tcpAgent(ctx, edge, [String(redisPort)]);
  assert.is((await run('redis-cli', ['-p', String(port), 'SET', 'tunnel', 'jetty'])).trim(), 'OK');
  assert.is((await run('redis-cli', ['-p', String(port), 'GET', 'tunnel'])).trim(), 'jetty');
  const big = 'x'.repeat(1 << 20);
  // -x: the value comes from stdin (1 MiB through the tunnel each way).
  await run('redis-cli', ['-p', String(port), '-x', 'SET', 'big'], big);
  assert.is((await run('redis-cli', ['-p', String(port), 'GET', 'big'])).trim(), big);
});

test.run();
