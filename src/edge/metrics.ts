import { createRequire } from 'node:module';
import type { Counter, CounterConfiguration, Gauge, GaugeConfiguration, Histogram, HistogramConfiguration, Registry } from 'prom-client';

const require = createRequire(import.meta.url);

/** A metric's configuration without `registers`: MetricFactory registers it. */
type Config<C> = Omit<C, 'registers'>;

/**
 * Stands in for every metric of an edge whose metrics nothing reads: each call does nothing.
 * (Counters, gauges and histograms are only ever incremented, decremented, observed or set.)
 */
const NO_METRIC = { inc() {}, dec() {}, set() {}, observe() {}, reset() {}, labels: () => NO_METRIC, get: async () => ({ values: [] }) };

/** The registry of an edge without metrics: an empty exposition. */
const NO_REGISTRY = { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: async () => '' };

/**
 * What EdgeMetrics makes its metrics with: prom-client, loaded here and only when `enabled`, or
 * NO_METRIC. A base class, so that its `enabled` is known before EdgeMetrics' field initialisers run.
 * prom-client (with @opentelemetry/api) is ≈ 80 files: an edge without an admin listener, where no one
 * could read a metric (the CLI's edgeInitFrom turns them off then), never loads it.
 */
class MetricFactory {
  readonly registry: Registry;
  private readonly prom: typeof import('prom-client') | undefined;

  protected constructor(enabled: boolean) {
    this.prom = enabled ? (require('prom-client') as typeof import('prom-client')) : undefined;
    this.registry = this.prom ? new this.prom.Registry() : (NO_REGISTRY as unknown as Registry);
  }

  protected counter<T extends string>(config: Config<CounterConfiguration<T>>): Counter<T> {
    return this.prom ? new this.prom.Counter({ ...config, registers: [this.registry] }) : (NO_METRIC as unknown as Counter<T>);
  }

  protected gauge<T extends string>(config: Config<GaugeConfiguration<T>>): Gauge<T> {
    return this.prom ? new this.prom.Gauge({ ...config, registers: [this.registry] }) : (NO_METRIC as unknown as Gauge<T>);
  }

  protected histogram<T extends string>(config: Config<HistogramConfiguration<T>>): Histogram<T> {
    return this.prom ? new this.prom.Histogram({ ...config, registers: [this.registry] }) : (NO_METRIC as unknown as Histogram<T>);
  }
}

export interface EdgeMetricsOptions {
  /** Keep metrics (default true); false: every metric is a no-op and prom-client is never loaded. */
  enabled?: boolean;
}

/**
 * The edge's Prometheus metrics, on a registry of its own (several edges can live in one process,
 * as in tests). No label carries a hostname or tunnel name: cardinality stays fixed.
 */
export class EdgeMetrics extends MetricFactory {
  readonly requests = this.counter({
    name: 'jetty_requests_total',
    help: 'Public requests by status code and agent transport',
    labelNames: ['code', 'transport'] as const,
  });
  readonly duration = this.histogram({
    name: 'jetty_request_duration_seconds',
    help: 'Public request duration, head to last byte',
    labelNames: ['transport'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
  });
  readonly receivedBytes = this.counter({
    name: 'jetty_received_bytes_total',
    help: 'Request body bytes received from public clients',
  });
  readonly sentBytes = this.counter({
    name: 'jetty_sent_bytes_total',
    help: 'Response body bytes sent to public clients',
  });
  readonly registrations = this.counter({
    name: 'jetty_registrations_total',
    help: 'Agent registrations by result',
    labelNames: ['result'] as const,
  });
  readonly limitRejections = this.counter({
    name: 'jetty_limit_rejections_total',
    help: 'Requests or agents refused by a limit',
    labelNames: ['limit'] as const,
  });
  readonly sessionFaults = this.counter({
    name: 'jetty_session_faults_total',
    help: 'Agent sessions closed because one of their handlers threw; the edge kept running',
    labelNames: ['transport'] as const,
  });
  readonly tcpConnections = this.counter({
    name: 'jetty_tcp_connections_total',
    help: 'Public TCP connections through TCP tunnels, by result (ok or the error code)',
    labelNames: ['result'] as const,
  });
  readonly udpFlows = this.counter({
    name: 'jetty_udp_flows_total',
    help: 'UDP flows (public address and port) through UDP tunnels, by result (ok or the error code)',
    labelNames: ['result'] as const,
  });
  readonly udpDropped = this.counter({
    name: 'jetty_udp_dropped_total',
    help: 'Datagrams dropped instead of queued: a flow over its queue bound, or a tunnel over its flow limit',
    labelNames: ['reason'] as const,
  });
  readonly tunnelBytes = this.counter({
    name: 'jetty_tunnel_bytes_total',
    help: 'Bytes through TCP and UDP tunnels; in = from public clients, out = to them',
    labelNames: ['kind', 'direction'] as const,
  });
  readonly tunnelDuration = this.histogram({
    name: 'jetty_tunnel_connection_duration_seconds',
    help: 'Duration of TCP connections and UDP flows through tunnels',
    labelNames: ['kind'] as const,
    buckets: [0.01, 0.1, 1, 10, 60, 600, 3600],
  });
  readonly pingRtt = this.histogram({
    name: 'jetty_agent_ping_rtt_seconds',
    help: 'Round-trip time of liveness pings to agents',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
  });
  readonly leaseClaims = this.counter({
    name: 'jetty_lease_claims_total',
    help: 'Claims of tunnel keys in the shared registry: ok, takeover (from another edge), taken (another owner), unavailable (Redis down)',
    labelNames: ['result'] as const,
  });
  readonly leaseRenewals = this.counter({
    name: 'jetty_lease_renewals_total',
    help: 'Batched renewals of this edge\'s leases (one per interval): ok or failed',
    labelNames: ['result'] as const,
  });
  readonly leaseLosses = this.counter({
    name: 'jetty_lease_losses_total',
    help: 'Leases this edge lost (its sessions of the key aborted): fenced (another edge holds it now) or refused (not claimable again after an outage)',
    labelNames: ['result'] as const,
  });
  readonly redisSeconds = this.histogram({
    name: 'jetty_redis_command_seconds',
    help: 'Latency of shared-registry calls to Redis, by command',
    labelNames: ['command'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 2],
  });
  readonly redisErrors = this.counter({
    name: 'jetty_redis_errors_total',
    help: 'Shared-registry calls to Redis that failed (unreachable, timed out), by command',
    labelNames: ['command'] as const,
  });

  readonly peerForwarded = this.counter({
    name: 'jetty_peer_forwarded_exchanges_total',
    help: 'Exchanges this edge forwarded to the peer edge holding their tunnel, by kind (http, stream, datagram)',
    labelNames: ['kind'] as const,
  });
  readonly peerRetries = this.counter({
    name: 'jetty_peer_misdirected_retries_total',
    help: 'Forwarded exchanges retried on another edge after a misdirected answer or an unreachable peer',
  });
  readonly peerMisdirected = this.counter({
    name: 'jetty_peer_misdirected_total',
    help: 'Exchanges peers forwarded here that this edge refused as misdirected (tunnel not held under that epoch)',
  });
  readonly peerConnections = this.gauge({
    name: 'jetty_peer_connections',
    help: 'Open edge-to-edge connections; in = peers forwarding to this edge, out = this edge forwarding to peers',
    labelNames: ['direction'] as const,
  });
  readonly peerAuthFailures = this.counter({
    name: 'jetty_peer_auth_failures_total',
    help: 'Peer listener handshakes refused (401): wrong or missing peer secret, or a clock outside the window',
  });

  constructor(stats: () => { openExchanges: number; sessionsByTransport: Record<string, number> }, options: EdgeMetricsOptions = {}) {
    super(options.enabled ?? true);
    this.gauge({
      name: 'jetty_open_exchanges',
      help: 'Exchanges in flight',
      collect() {
        this.set(stats().openExchanges);
      },
    });
    this.gauge({
      name: 'jetty_agent_sessions',
      help: 'Connected agent sessions by transport',
      labelNames: ['transport'] as const,
      collect() {
        this.reset();
        for (const [transport, n] of Object.entries(stats().sessionsByTransport)) this.set({ transport }, n);
      },
    });
  }
}
