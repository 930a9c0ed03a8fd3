// GET /metrics: a Prometheus exposition that promtool accepts, with hotconf's counters and gauges telling
// the truth after a commit and a rejection.
import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { startHttpServer } from '../../src/http/index.js';
import { HotconfMetrics, METRIC_NAMES } from '../../src/metrics/index.js';
import { until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { serve, subscribe } from './fixtures.js';

/** The value of one sample line, `name{labels} value`, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function promtool(exposition: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('promtool is not installed: install the Debian package `prometheus` (apt-get install -y prometheus), which provides /usr/bin/promtool');
  }
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('GET /metrics', () => {
  it('passes promtool check metrics and reports commits, rejections, versions and states', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('db');
    await w.config('app.yaml', 'port: 1\n');
    await w.config('db.yaml', 'port: 2\n');
    // per-file: under all-or-nothing, a re-check of app.yaml batched with the invalid db.yaml would show app
    // as `pending`, and the counts below would depend on timing.
    await using s = await serve(w, {}, { batchPolicy: 'per-file' });
    s.hot.onConfigChange(() => {
      throw new Error('a failing subscriber');
    });
    using sub = subscribe(s.url);
    await until(() => sub.received.find((e) => e.type === 'hello'), 'hello');

    const startedAt = Date.now() / 1000;
    const v1 = s.hot.version;
    await w.configAtomic('app.yaml', 'port: 10\n');
    await until(() => s.hot.version > v1, 'a commit');
    await w.configAtomic('db.yaml', 'port: "nope"\n');
    await until(() => s.hot.status().errors === 1, 'a rejection');
    await until(() => s.hot.stats.subscriberErrors >= 1, 'the subscriber failed');

    // What the daemon counts for publish / notify.
    s.server.metrics.notifyResults.inc({ kind: 'webhook', result: 'ok' });

    const res = await s.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();

    const check = promtool(text);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);

    for (const name of METRIC_NAMES) expect(text).toContain(`# TYPE ${name} `);
    expect(text).toContain('# TYPE hotconf_commit_latency_seconds histogram');
    expect(text).toMatch(/^process_cpu_seconds_total /m); // default metrics on the server's own registry

    const attempts = sample(text, 'hotconf_reload_attempts_total')!;
    const successes = sample(text, 'hotconf_reload_success_total')!;
    const failures = sample(text, 'hotconf_reload_failures_total{reason="E_SCHEMA"}')!;
    expect(successes).toBeGreaterThanOrEqual(1);
    // A refused file read right after it was written is looked at again, and may be refused twice.
    expect(failures).toBeGreaterThanOrEqual(1);
    expect(attempts).toBe(successes + failures);
    expect(sample(text, 'hotconf_config_version')).toBe(s.hot.version);
    expect(sample(text, 'hotconf_configs{status="ok"}')).toBe(1);
    expect(sample(text, 'hotconf_configs{status="error"}')).toBe(1);
    expect(sample(text, 'hotconf_configs{status="pending"}')).toBe(0);
    expect(sample(text, 'hotconf_configs{status="deleted"}')).toBe(0);
    expect(sample(text, 'hotconf_commit_latency_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hotconf_commit_latency_seconds_bucket{le="10"}')).toBe(sample(text, 'hotconf_commit_latency_seconds_count'));
    expect(sample(text, 'hotconf_commit_latency_seconds_sum')).toBeGreaterThan(0);
    const lastSuccess = sample(text, 'hotconf_last_reload_success_timestamp_seconds')!;
    expect(lastSuccess).toBeGreaterThanOrEqual(startedAt - 1);
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);
    expect(sample(text, 'hotconf_subscriber_errors_total')).toBe(s.hot.stats.subscriberErrors);
    expect(sample(text, 'hotconf_sse_clients')).toBe(1);
    expect(sample(text, 'hotconf_sse_dropped_clients_total')).toBe(0);
    expect(sample(text, 'hotconf_long_polls')).toBe(0);
    expect(sample(text, 'hotconf_notify_results_total{kind="webhook",result="ok"}')).toBe(1);
  });

  it('registers on a caller registry (without default metrics) and unregisters on close', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    const registry = new Registry();
    const first = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, registry });
    const text = await registry.metrics();
    expect(text).toContain('hotconf_config_version');
    expect(text).not.toContain('process_cpu_seconds_total');
    expect(promtool(text).status).toBe(0);
    await first.close();
    expect(await registry.metrics()).not.toContain('hotconf_');
    // The same registry serves a second server.
    await using second = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, registry });
    expect(await (await fetch(`${second.url}/metrics`)).text()).toContain(`hotconf_config_version ${hot.version}`);
  });

  it('serves metrics it is given, counts into them, and leaves them to their owner on close', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    using metrics = new HotconfMetrics(hot, { registry: new Registry() });
    const server = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, metrics });
    expect(server.metrics).toBe(metrics);
    metrics.notifyResults.inc({ kind: 'publish', result: 'ok' });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(sample(text, 'hotconf_notify_results_total{kind="publish",result="ok"}')).toBe(1);
    await server.close();
    expect(await metrics.metrics()).toContain('hotconf_notify_results_total{kind="publish",result="ok"} 1');
  });

  it('refuses both metrics and a registry', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    using metrics = new HotconfMetrics(hot, { registry: new Registry() });
    await expect(startHttpServer(hot, { listen: '127.0.0.1:0', metrics, registry: new Registry() })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});
