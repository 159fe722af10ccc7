// Loaded into the test process by test/run.js (`--import`): on SIGUSR2 it prints what still keeps the
// process alive (servers with their address, sockets with both ends, child processes, ref'd timers),
// so a run that does not exit after its summary says which test left what open.
process.on('SIGUSR2', () => {
  const lines = process._getActiveHandles().map((h) => {
    const name = h?.constructor?.name ?? typeof h;
    if (typeof h?.address === 'function' && typeof h?.listen === 'function') return `${name} listening on ${JSON.stringify(h.address())}`;
    if (name === 'Socket' || name === 'TLSSocket') return `${name} ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}${h.destroyed ? ' (destroyed)' : ''}`;
    if (name === 'ChildProcess') return `${name} pid ${h.pid}: ${h.spawnargs?.join(' ')}`;
    return name;
  });
  process.stdout.write(`\nstill open: ${JSON.stringify(process.getActiveResourcesInfo())}\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
});
