// Loaded into the test process by test/run.js (`--import`): on SIGUSR2 it prints what still keeps the
// process alive (servers with their address, sockets with both ends, child processes, ref'd timers),
// so a run that does not exit after its summary says which test left what open.
import net from 'node:net';

// Where each client socket was connected from (a short stack), and which test file was running: a
// lingering socket then names the code that opened it.
let running = '';
const write = process.stdout.write;
process.stdout.write = function (chunk, ...rest) {
  // uvu writes ` suite name ` before a suite's dots: the last one is the suite running now.
  const text = String(chunk);
  if (/\S/.test(text) && !/^[\s•✘]+$/.test(text) && !text.includes('(')) running = text.trim();
  return write.call(this, chunk, ...rest);
};
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.openedBy = `[${running}] ` + new Error().stack.split('\n').slice(2, 12).map((l) => l.trim()).join(' < ');
  return connect.apply(this, args);
};

process.on('SIGUSR2', () => {
  const lines = process._getActiveHandles().map((h) => {
    const name = h?.constructor?.name ?? typeof h;
    if (typeof h?.address === 'function' && typeof h?.listen === 'function') return `${name} listening on ${JSON.stringify(h.address())}`;
    if (name === 'Socket' || name === 'TLSSocket') return `${name} ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}${h.destroyed ? ' (destroyed)' : ''}${h.openedBy ? `, opened at ${h.openedBy}` : ''}`;
    if (name === 'ChildProcess') return `${name} pid ${h.pid}: ${h.spawnargs?.join(' ')}`;
    return name;
  });
  process.stdout.write(`\nstill open: ${JSON.stringify(process.getActiveResourcesInfo())}\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
});
