import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import { EventEmitter } from 'node:events';
import { ChunkKind, ExchangeKind, ResetCode, type HTTPChunk } from '../codec/http-chunk.js';
import { DATAGRAM_BATCH_HEADER, decodeBatch, MAX_DATAGRAM_BYTES, offersBatching } from '../codec/datagram-batch.js';
import { AbortError, IdleTimeoutError, ProtocolError, TunnelNotFoundError, toError } from '../errors.js';
import { DatagramQueue, datagramChunks, type ByteBudget } from '../streams/datagram-queue.js';
import { ExchangePipeline } from '../streams/exchange-pipeline.js';
import { waitForEvent } from '../wait.js';
import type { PortListenerInit } from './port-tunnels.js';
import { checkPortAnswer, portExchangeHead } from './tcp-listener.js';

/** Default `udp-idle-timeout`: a flow with no datagram either way for this long ends, ms. */
export const DEFAULT_UDP_IDLE_TIMEOUT_MS = 60_000;
/** Default cap on flows (public address and port) per UDP tunnel; a datagram of a new flow beyond it is dropped. */
export const DEFAULT_UDP_MAX_FLOWS = 1024;
/** Datagrams one flow holds while its exchange cannot take them; beyond: dropped and counted. */
export const UDP_FLOW_QUEUE_DATAGRAMS = 256;
/**
 * Datagram bytes all the flows of one UDP port hold together while their exchanges cannot take them;
 * beyond: dropped and counted. Without it the bound was flows × UDP_FLOW_QUEUE_DATAGRAMS × 64 KiB
 * (17 GB at the default udp-max-flows), reachable by one sender from many source ports.
 */
export const UDP_PORT_QUEUE_BYTES = 16 * 1024 * 1024;
/** Largest UDP payload (IPv4: 65,535 − 8 UDP − 20 IP header bytes), shared with the batch framing. One DATA chunk carries it whole. */
export { MAX_DATAGRAM_BYTES };
/**
 * The kernel receive buffer asked for on each UDP port (capped by net.core.rmem_max): bursts wait
 * there, outside the JS heap, while the event loop is busy, instead of being lost at the socket.
 */
export const UDP_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Bytes the port's socket may have waiting to be sent before replies are dropped. */
export const UDP_SEND_QUEUE_BYTES = 4 * 1024 * 1024;

export interface UdpListenerInit extends PortListenerInit {
  /** Default DEFAULT_UDP_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Default DEFAULT_UDP_MAX_FLOWS. */
  maxFlows?: number;
}

/** One flow: its queue of datagrams towards the agent, its exchange's pipeline and its idle timer. */
interface Flow {
  queue: DatagramQueue;
  pipeline: ExchangePipeline;
  /** Fields of its log line (the transport is known once the session is). */
  fields: Record<string, unknown>;
  /** Fires idleTimeoutMs after the flow opened, then after each re-arm (see lastActive). */
  timer: NodeJS.Timeout;
  /**
   * performance.now() of its last datagram either way. Datagrams only stamp it; the timer, when it
   * fires, re-arms for the time left: a timer reset per datagram was measurable work at 50,000/s.
   */
  lastActive: number;
  /** Aborted when the flow ends before its exchange opened (idle, port closed). */
  ended: AbortController;
}

/**
 * One UDP tunnel's public port: a dgram socket; each flow (public address and port) is one
 * `datagram` exchange on the tunnel's session, each DATA one datagram both ways, or a batch of them
 * when the agent accepts the open's `Jetty-Datagram-Batch` offer (codec/datagram-batch.ts). Datagrams a flow
 * cannot pass on now wait in a DatagramQueue of UDP_FLOW_QUEUE_DATAGRAMS (all flows of the port
 * together: UDP_PORT_QUEUE_BYTES), beyond which they are
 * dropped and counted (`jetty_udp_dropped_total`); a flow ends after `idleTimeoutMs` of silence.
 * Teardown order (abort): every flow's exchange aborted → socket closed.
 */
export class UdpListener extends EventEmitter<{ idle: [] }> {
  private readonly socket: Socket;
  private readonly init: UdpListenerInit;
  private readonly flows = new Map<string, Flow>();
  /** What every flow's queue holds, at most UDP_PORT_QUEUE_BYTES. */
  private readonly queued: ByteBudget = { bytes: 0, max: UDP_PORT_QUEUE_BYTES };
  private accepting = true;

  private constructor(init: UdpListenerInit, socket: Socket) {
    super();
    this.init = init;
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => init.logger.warn({ tunnel: init.key, err: err.message }, 'udp socket error'));
  }

  static async listen(init: UdpListenerInit): Promise<UdpListener> {
    const socket = createSocket({ type: isIPv6(init.host) ? 'udp6' : 'udp4', exclusive: true, lookup: literalLookup } as Parameters<typeof createSocket>[0]);
    const bound = waitForEvent(socket, 'listening');
    socket.bind(init.port, init.host);
    try {
      await bound;
    } catch (err) {
      socket.close();
      throw err;
    }
    try {
      socket.setRecvBufferSize(UDP_RECV_BUFFER_BYTES);
    } catch {
      // The system's default buffer then: bursts beyond it are lost at the socket, as without a tunnel.
    }
    return new UdpListener(init, socket);
  }

  /** Flows open now. */
  get connections(): number {
    return this.flows.size;
  }

  /** Datagram bytes held in the flows' queues and the socket's send queue. */
  bufferedBytes(): number {
    return this.socket.getSendQueueSize() + this.queued.bytes;
  }

  /** Drain: datagrams of new flows are dropped; open flows go on. */
  stopAccepting(): void {
    this.accepting = false;
  }

  abort(): void {
    this.accepting = false;
    for (const f of this.flows.values()) {
      const err = new AbortError('udp port closed');
      f.ended.abort(err);
      f.pipeline.abort(err, ResetCode.CANCEL);
    }
    try {
      this.socket.close();
    } catch {
      // Closed already.
    }
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const { metrics, maxFlows = DEFAULT_UDP_MAX_FLOWS } = this.init;
    const id = `${rinfo.address}:${rinfo.port}`;
    let flow = this.flows.get(id);
    if (!flow) {
      if (!this.accepting || this.flows.size >= maxFlows) {
        metrics.udpDropped.inc({ reason: 'flows' });
        return;
      }
      flow = this.open(id, rinfo);
    }
    flow.lastActive = performance.now();
    if (!flow.queue.push(msg)) metrics.udpDropped.inc({ reason: 'queue' });
  }

  /** A new flow: its exchange opens in the background while its first datagrams wait in its queue. */
  private open(id: string, rinfo: RemoteInfo): Flow {
    const { key, logger, idleTimeoutMs = DEFAULT_UDP_IDLE_TIMEOUT_MS } = this.init;
    const local = this.socket.address();
    const head = portExchangeHead(ExchangeKind.DATAGRAM, { address: rinfo.address, port: rinfo.port }, { address: local.address, port: local.port });
    // The offer of datagram batching (codec/datagram-batch.ts); the agent's 200 says whether it is taken.
    head.headers!.push(DATAGRAM_BATCH_HEADER);
    const fields: Record<string, unknown> = { tunnel: key, kind: 'udp', transport: 'none' };
    const pipeline = new ExchangePipeline({ id: head.exchangeId, method: head.method, path: head.target, logger, fields });
    const queue = new DatagramQueue(UDP_FLOW_QUEUE_DATAGRAMS, this.queued);
    const ended = new AbortController();
    // Silence ends the flow, whether its exchange is open yet or still waiting for its agent.
    const expire = (): void => {
      const silent = performance.now() - flow.lastActive;
      if (silent < idleTimeoutMs) {
        flow.timer = setTimeout(expire, idleTimeoutMs - silent);
        return;
      }
      const err = new IdleTimeoutError(`no datagram either way for ${idleTimeoutMs} ms`);
      ended.abort(err);
      pipeline.abort(err, ResetCode.CANCEL);
    };
    const flow: Flow = { queue, pipeline, fields, timer: setTimeout(expire, idleTimeoutMs), lastActive: performance.now(), ended };
    this.flows.set(id, flow);
    void this.relay(flow, head, rinfo).finally(() => {
      clearTimeout(flow.timer);
      queue.discard();
      this.flows.delete(id);
      if (this.flows.size === 0) this.emit('idle');
    });
    return flow;
  }

  /** One flow's exchange, from its open to its log line; never rejects. */
  private async relay(flow: Flow, head: HTTPChunk, rinfo: RemoteInfo): Promise<void> {
    const { registry, key, reconnectGraceMs, metrics } = this.init;
    const { pipeline, queue } = flow;
    // The flow's end (idle, a reset, the session's loss) must end the upload even while it waits for a datagram.
    pipeline.onFailed(() => queue.close());
    // Resolves with the agent's answer to the batching offer: until then no DATA goes (an agent
    // that accepts reads every DATA as a batch, one that does not reads each as one datagram).
    let answered!: (batching: boolean) => void;
    const batchingAnswer = new Promise<boolean>((resolve) => (answered = resolve));
    pipeline.onFailed(() => answered(false));
    let failure: Error | undefined;
    try {
      const session = registry.lookup(key) ?? (await registry.waitFor(key, reconnectGraceMs));
      if (!session) throw new TunnelNotFoundError('the agent of this port is gone');
      flow.fields.transport = session.transport;
      const exchange = pipeline.attach(await session.openExchange(head, { signal: flow.ended.signal }));
      const counter = pipeline.bytesIn;
      async function* upload(): AsyncGenerator<HTTPChunk> {
        yield head;
        const batching = await batchingAnswer;
        yield* datagramChunks(queue, batching, counter);
      }
      const download = async (): Promise<void> => {
        const chunks = exchange.source[Symbol.asyncIterator]();
        let batching = false;
        try {
          const first = await chunks.next();
          if (first.done) throw new ProtocolError('flow ended before its HEADERS');
          checkPortAnswer(first.value);
          batching = offersBatching(first.value.headers);
        } finally {
          answered(batching);
        }
        pipeline.status = 200;
        for (;;) {
          const { value, done } = await chunks.next();
          if (done) return;
          if (value.kind !== ChunkKind.DATA) throw new ProtocolError('unexpected chunk in a datagram flow');
          if (!batching && value.data!.byteLength > MAX_DATAGRAM_BYTES) throw new ProtocolError(`datagram of more than ${MAX_DATAGRAM_BYTES} bytes`);
          // A malformed batch throws ProtocolError before any of its datagrams is sent.
          const datagrams = batching ? decodeBatch(value.data!) : [value.data!];
          flow.lastActive = performance.now();
          for (const d of datagrams) {
            if (this.socket.getSendQueueSize() > UDP_SEND_QUEUE_BYTES) {
              metrics.udpDropped.inc({ reason: 'send' });
              continue;
            }
            pipeline.bytesOut.bytes += d.byteLength;
            this.socket.send(d, rinfo.port, rinfo.address);
          }
        }
      };
      // The agent's fault (a malformed batch, an oversize datagram) resets the flow at once: the
      // upload may be waiting for a datagram that never comes, and the flow must not wait for it.
      const downloaded = download().catch((err: unknown) => {
        const e = toError(err);
        pipeline.abort(e, e instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.CANCEL);
        throw e;
      });
      const results = await Promise.allSettled([exchange.sink(upload()), downloaded]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        const err = toError(failed.reason);
        pipeline.abort(err, err instanceof ProtocolError ? ResetCode.PROTOCOL_ERROR : ResetCode.CANCEL);
        throw exchange.error ?? err;
      }
    } catch (err) {
      failure = toError(err);
    }
    const entry = pipeline.finish(failure);
    // A flow ends by its idle timeout: that is its normal end, not a failure.
    metrics.udpFlows.inc({ result: !failure || failure instanceof IdleTimeoutError ? 'ok' : ((failure as { code?: string }).code ?? 'ERR_INTERNAL') });
    metrics.tunnelBytes.inc({ kind: 'udp', direction: 'in' }, entry.bytesIn);
    metrics.tunnelBytes.inc({ kind: 'udp', direction: 'out' }, entry.bytesOut);
    metrics.tunnelDuration.observe({ kind: 'udp' }, entry.ms / 1000);
  }
}

/**
 * The port socket's name resolution: an IP literal (every reply's destination is the address a
 * datagram came from) resolves at once; dgram's default, dns.lookup, answers even those a tick later,
 * and that was a nextTick and a closure per datagram sent. Names (a configured host) go to dns.lookup.
 */
function literalLookup(hostname: string, options: LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const literal = isIP(hostname);
  if (literal) callback(null, hostname, literal);
  else dnsLookup(hostname, options, callback);
}
