import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The edge's Prometheus metrics, on a registry of its own (several edges can live in one process,
 * as in tests). No label carries a hostname or tunnel name: cardinality stays fixed.
 */
export class EdgeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'jetty_requests_total',
    help: 'Public requests by status code and agent transport',
    labelNames: ['code', 'transport'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'jetty_request_duration_seconds',
    help: 'Public request duration, head to last byte',
    labelNames: ['transport'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly receivedBytes = new Counter({
    name: 'jetty_received_bytes_total',
    help: 'Request body bytes received from public clients',
    registers: [this.registry],
  });
  readonly sentBytes = new Counter({
    name: 'jetty_sent_bytes_total',
    help: 'Response body bytes sent to public clients',
    registers: [this.registry],
  });
  readonly registrations = new Counter({
    name: 'jetty_registrations_total',
    help: 'Agent registrations by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly limitRejections = new Counter({
    name: 'jetty_limit_rejections_total',
    help: 'Requests or agents refused by a limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly sessionFaults = new Counter({
    name: 'jetty_session_faults_total',
    help: 'Agent sessions closed because one of their handlers threw; the edge kept running',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly tcpConnections = new Counter({
    name: 'jetty_tcp_connections_total',
    help: 'Public TCP connections through TCP tunnels, by result (ok or the error code)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly udpFlows = new Counter({
    name: 'jetty_udp_flows_total',
    help: 'UDP flows (public address and port) through UDP tunnels, by result (ok or the error code)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly udpDropped = new Counter({
    name: 'jetty_udp_dropped_total',
    help: 'Datagrams dropped instead of queued: a flow over its queue bound, or a tunnel over its flow limit',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tunnelBytes = new Counter({
    name: 'jetty_tunnel_bytes_total',
    help: 'Bytes through TCP and UDP tunnels; in = from public clients, out = to them',
    labelNames: ['kind', 'direction'] as const,
    registers: [this.registry],
  });
  readonly tunnelDuration = new Histogram({
    name: 'jetty_tunnel_connection_duration_seconds',
    help: 'Duration of TCP connections and UDP flows through tunnels',
    labelNames: ['kind'] as const,
    buckets: [0.01, 0.1, 1, 10, 60, 600, 3600],
    registers: [this.registry],
  });
  readonly pingRtt = new Histogram({
    name: 'jetty_agent_ping_rtt_seconds',
    help: 'Round-trip time of liveness pings to agents',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly leaseClaims = new Counter({
    name: 'jetty_lease_claims_total',
    help: 'Claims of tunnel keys in the shared registry: ok, takeover (from another edge), taken (another owner), unavailable (Redis down)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly leaseRenewals = new Counter({
    name: 'jetty_lease_renewals_total',
    help: 'Batched renewals of this edge\'s leases (one per interval): ok or failed',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly leaseLosses = new Counter({
    name: 'jetty_lease_losses_total',
    help: 'Leases this edge lost (its sessions of the key aborted): fenced (another edge holds it now) or refused (not claimable again after an outage)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly redisSeconds = new Histogram({
    name: 'jetty_redis_command_seconds',
    help: 'Latency of shared-registry calls to Redis, by command',
    labelNames: ['command'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 2],
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: 'jetty_redis_errors_total',
    help: 'Shared-registry calls to Redis that failed (unreachable, timed out), by command',
    labelNames: ['command'] as const,
    registers: [this.registry],
  });

  readonly peerForwarded = new Counter({
    name: 'jetty_peer_forwarded_exchanges_total',
    help: 'Exchanges this edge forwarded to the peer edge holding their tunnel, by kind (http, stream, datagram)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly peerRetries = new Counter({
    name: 'jetty_peer_misdirected_retries_total',
    help: 'Forwarded exchanges retried on another edge after a misdirected answer or an unreachable peer',
    registers: [this.registry],
  });
  readonly peerMisdirected = new Counter({
    name: 'jetty_peer_misdirected_total',
    help: 'Exchanges peers forwarded here that this edge refused as misdirected (tunnel not held under that epoch)',
    registers: [this.registry],
  });
  readonly peerConnections = new Gauge({
    name: 'jetty_peer_connections',
    help: 'Open edge-to-edge connections; in = peers forwarding to this edge, out = this edge forwarding to peers',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly peerAuthFailures = new Counter({
    name: 'jetty_peer_auth_failures_total',
    help: 'Peer listener handshakes refused (401): wrong or missing peer secret, or a clock outside the window',
    registers: [this.registry],
  });

  constructor(stats: () => { openExchanges: number; sessionsByTransport: Record<string, number> }) {
    new Gauge({
      name: 'jetty_open_exchanges',
      help: 'Exchanges in flight',
      registers: [this.registry],
      collect() {
        this.set(stats().openExchanges);
      },
    });
    new Gauge({
      name: 'jetty_agent_sessions',
      help: 'Connected agent sessions by transport',
      labelNames: ['transport'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [transport, n] of Object.entries(stats().sessionsByTransport)) this.set({ transport }, n);
      },
    });
  }
}
