// hotconf's Prometheus metrics: counters fed by every processed batch (hot.onBatch), gauges read from
// hot.status() and hot.stats at scrape time, the SSE client gauges the HTTP event stream keeps, and the
// publish/notify outcomes the daemon reports. Its own shell: the daemon owns it and hands it to the HTTP
// server, which serves it on GET /metrics; usable alone with a caller's prom-client Registry.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BatchResult, ConfigState, Hotconf } from '../hotconf.js';
import type { Unsubscribe } from '../store/index.js';

export interface HotconfMetricsOptions {
  /** Registry to register the metrics on. Default: a new Registry, with prom-client's default process metrics. */
  registry?: Registry;
}

/** The metric names, for dashboards and tests. */
export const METRIC_NAMES = [
  'hotconf_reload_attempts_total',
  'hotconf_reload_success_total',
  'hotconf_reload_failures_total',
  'hotconf_last_reload_success_timestamp_seconds',
  'hotconf_config_version',
  'hotconf_configs',
  'hotconf_commit_latency_seconds',
  'hotconf_subscriber_errors_total',
  'hotconf_sse_clients',
  'hotconf_sse_dropped_clients_total',
  'hotconf_long_polls',
  'hotconf_notify_results_total',
  'hotconf_source_connected',
  'hotconf_source_revision',
  'hotconf_source_release',
  'hotconf_source_stale',
] as const;

const STATES: readonly ConfigState[] = ['ok', 'error', 'pending', 'deleted'];

/** Event → commit latency: from a 1 ms debounce-free commit to a 10 s storm ceiling. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class HotconfMetrics implements Disposable {
  readonly registry: Registry;
  /** Connected SSE clients; the event stream increments and decrements it. */
  readonly sseClients: Gauge;
  /** SSE clients dropped for reading too slowly (their queue passed `clientBufferBytes`). */
  readonly sseDropped: Counter;
  /** Requests waiting in a long-poll (`GET /v1/configs/:name?wait=`). */
  readonly longPolls: Gauge;
  /** Outcomes of publish / notify deliveries (after retries), for the daemon to count:
   *  `inc({ kind: 'publish' | 'webhook' | 'signal' | 'command', result: 'ok' | 'failed' })`. */
  readonly notifyResults: Counter<'kind' | 'result'>;
  readonly #ownRegistry: boolean;
  readonly #offBatch: Unsubscribe;
  #closed = false;

  constructor(hot: Hotconf, options: HotconfMetricsOptions = {}) {
    this.#ownRegistry = options.registry === undefined;
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (this.#ownRegistry) {
      collectDefaultMetrics({ register: registry });
      // prom-client names these gauges `_total`, which Prometheus reserves for counters (promtool check metrics
      // refuses them); the same numbers are kept per type in nodejs_active_handles / _requests / _resources.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        registry.removeSingleMetric(name);
      }
    }
    const registers = [registry];

    const attempts = new Counter({
      name: 'hotconf_reload_attempts_total',
      help: 'Batches processed (file changes, rescans, reloads), committed or not.',
      registers,
    });
    const success = new Counter({
      name: 'hotconf_reload_success_total',
      help: 'Batches processed without any error.',
      registers,
    });
    const failures = new Counter({
      name: 'hotconf_reload_failures_total',
      help: 'Batches with at least one refused file, by the code of its first error (E_SCHEMA, E_PARSE, ...).',
      labelNames: ['reason'],
      registers,
    });
    const lastSuccess = new Gauge({
      name: 'hotconf_last_reload_success_timestamp_seconds',
      help: 'When the last batch without errors finished (seconds since the epoch); the initial load counts.',
      registers,
    });
    const latency = new Histogram({
      name: 'hotconf_commit_latency_seconds',
      help: 'From the first file event of a batch to its commit.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'hotconf_config_version',
      help: 'Version of the committed config snapshot; increases with each commit.',
      registers,
      collect() {
        this.set(hot.version);
      },
    });
    new Gauge({
      name: 'hotconf_configs',
      help: 'Configs by state: ok, error (last good value kept), pending (held back by its batch), deleted (kept).',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = new Map<ConfigState, number>(STATES.map((s) => [s, 0]));
        for (const c of hot.status().configs) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
        for (const [status, n] of counts) this.set({ status }, n);
      },
    });
    new Counter({
      name: 'hotconf_subscriber_errors_total',
      help: 'Subscriber handlers that threw or rejected.',
      registers,
      collect() {
        // The store owns the count; a counter (not a gauge) so that rate() works and promtool is happy.
        this.reset();
        this.inc(hot.stats.subscriberErrors);
      },
    });
    new Gauge({
      name: 'hotconf_source_connected',
      help: 'Whether the config source is reachable (1) or not (0: etcd lost, the last good config is served). Always 1 for a directory.',
      labelNames: ['source'],
      registers,
      collect() {
        const { source } = hot.status();
        this.reset();
        this.set({ source: source.kind }, source.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'hotconf_source_revision',
      help: 'The etcd revision the served snapshot reflects (fleet members at the same value hold the same config); 0 for a directory.',
      registers,
      collect() {
        const rev = hot.snapshot().sourceRevision;
        this.set(rev === undefined ? 0 : Number(rev));
      },
    });
    new Gauge({
      name: 'hotconf_source_release',
      help: 'The fleet release the served snapshot holds (etcd release mode: members at the same value serve the same config); 0 otherwise.',
      registers,
      collect() {
        this.set(hot.snapshot().sourceRelease ?? 0);
      },
    });
    new Gauge({
      name: 'hotconf_source_stale',
      help: 'Whether the config served is a cached release because etcd was unreachable at start (1) or not (0).',
      registers,
      collect() {
        this.set((hot.status().source as { stale?: boolean }).stale === true ? 1 : 0);
      },
    });
    this.sseClients = new Gauge({ name: 'hotconf_sse_clients', help: 'Connected /v1/events clients.', registers });
    this.sseDropped = new Counter({
      name: 'hotconf_sse_dropped_clients_total',
      help: '/v1/events clients dropped because they read too slowly.',
      registers,
    });
    this.longPolls = new Gauge({ name: 'hotconf_long_polls', help: 'Requests waiting in a long-poll for a config to change.', registers });
    this.notifyResults = new Counter({
      name: 'hotconf_notify_results_total',
      help: 'Publish and notify deliveries by kind (publish, webhook, signal, command) and final result (ok, failed).',
      labelNames: ['kind', 'result'],
      registers,
    });

    const initial = hot.snapshot();
    if (initial.version > 0) lastSuccess.set(initial.committedAt / 1000);

    this.#offBatch = hot.onBatch((result: BatchResult) => {
      attempts.inc();
      const first = result.errors[0];
      if (first === undefined) {
        success.inc();
        lastSuccess.set(Date.now() / 1000);
      } else {
        failures.inc({ reason: first.code });
      }
      if (result.committed) latency.observe(result.latencyMs / 1000);
    });
  }

  /** The Prometheus text exposition of the whole registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops counting batches; on a caller's registry, also unregisters hotconf's metrics. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offBatch();
    if (!this.#ownRegistry) for (const name of METRIC_NAMES) this.registry.removeSingleMetric(name);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
