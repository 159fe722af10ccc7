// `node dist/bench/tcp-relay.js LISTEN_PORT TO_PORT`: the least a Node process can do to pass a
// connection on: every accepted connection piped both ways to 127.0.0.1:TO_PORT, no parsing, no framing,
// no multiplexing. Two of them chained (bench/relay-peer.ts) are the floor of any tunnel made of two Node
// processes that each read and write every byte, as Jetty's edge and agent do.
import { connect, createServer, type Socket } from 'node:net';

const [listenPort, toPort] = process.argv.slice(2).map(Number);

const server = createServer((client: Socket) => {
  const upstream = connect(toPort, '127.0.0.1');
  const end = (): void => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) s.on('error', end).on('close', end);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(listenPort, '127.0.0.1', () => console.log(`relay ${(server.address() as { port: number }).port}`));
process.on('SIGTERM', () => process.exit(0));
