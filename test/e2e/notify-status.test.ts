// `hotconf run` behind an application that refuses a version (issue 14, point 3): the daemon's log says why,
// GET /v1/status shows the target's last result and reason, /metrics counts it; an accepted version shows as ok.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { until } from '../helpers.js';
import { startHotconf } from './cli-helpers.js';

const REASON = 'failed to reload config: found multiple scrape configs with job name "prometheus"';

it('a webhook refusal is in the log, in GET /v1/status under notify, and counted in /metrics', async () => {
  await using w = await world();
  await w.schema('app', { type: 'object' });
  await w.config('app.yaml', 'n: 1\n');
  let answer = { status: 500, body: REASON };
  const versions: number[] = [];
  const app = createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      versions.push((JSON.parse(data) as { version: number }).version);
      res.writeHead(answer.status).end(answer.body);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(app.address() as AddressInfo).port}/-/reload`;
  const settings = await w.tmp.write(
    'hotconf.yaml',
    `configDir: ${w.configDir}\nschemaDir: ${w.schemaDir}\nhttp:\n  listen: 127.0.0.1:0\nnotify:\n  webhook:\n    url: ${hook}\n    retries: 1\n    backoffMs: 10\n`,
  );
  await using d = startHotconf(['run', '--config', settings]);
  try {
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
    const failed = await d.line((l) => l.msg === 'webhook failed', 'the refusal logged');
    expect(failed).toMatchObject({ status: 500, body: REASON, attempts: 2, version: 1 });
    type Status = { epoch: string; notify: Array<Record<string, unknown>> };
    const status = async () => (await (await fetch(`${url}/v1/status`)).json()) as Status;
    const refused = await until(async () => ((await status()).notify[0]?.result === 'failed' ? status() : undefined), 'the failure in /v1/status');
    expect(refused.notify).toEqual([
      { kind: 'webhook', target: hook, version: 1, result: 'failed', at: expect.any(String) as string, reason: `HTTP 500: ${REASON}`, delivering: null, lastOkVersion: null },
    ]);
    expect(versions).toEqual([1, 1]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/hotconf_notify_results_total\{kind="webhook",result="failed"\} 1\n/);

    answer = { status: 200, body: 'ok' };
    await w.configAtomic('app.yaml', 'n: 2\n');
    await until(async () => (await status()).notify[0]?.result === 'ok', 'the accepted version in /v1/status');
    expect((await status()).notify[0]).toMatchObject({ version: 2, result: 'ok', reason: null, lastOkVersion: 2 });
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/hotconf_notify_results_total\{kind="webhook",result="ok"\} 1\n/);
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  } finally {
    app.closeAllConnections();
    app.close();
  }
}, 30_000);
