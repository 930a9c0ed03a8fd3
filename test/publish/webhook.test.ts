// The webhook: after each publish, a JSON notice to the application, retried with backoff, never stale, never
// leaking its credentials into the logs.
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { memoryLogger, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { APP_SCHEMA, receiver, recorder } from './fixtures.js';

const version = (await import('../../package.json', { with: { type: 'json' } })).default.version;

async function twoConfigs() {
  const w = await world();
  await w.schema('app', APP_SCHEMA);
  await w.schema('other', APP_SCHEMA);
  await w.config('app.yaml', 'port: 1\nn: 0\n');
  await w.config('other.yaml', 'port: 2\n');
  return w;
}

describe('webhook', () => {
  it('the receiver gets every published version in order, ending on the current one, as JSON with our user-agent', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver();
    await using pub = await startPublisher(hot, { publish: { dir: w.tmp.file('out') }, notify: { webhook: { url: hook.url } } });

    for (let n = 1; n <= 20; n++) await w.configAtomic('app.yaml', `port: 1\nn: ${n}\n`);
    await until(() => (hot.get('app') as { n: number } | undefined)?.n === 20, 'last write committed');
    await pub.idle();

    const versions = hook.versions();
    expect(versions.every((v, i) => i === 0 || v > versions[i - 1]!)).toBe(true);
    expect(versions.at(-1)).toBe(hot.version);
    const first = hook.requests[0]!;
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.headers['user-agent']).toBe(`hotconf/${version}`);
    expect(first.body).toEqual({
      version: 1,
      changed: ['app', 'other'],
      removed: [],
      hashes: { app: expect.any(String) as string, other: expect.any(String) as string },
    });
  });

  it('a notice lists the changed and removed names and the hash of every config', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver();
    await using pub = await startPublisher(hot, { notify: { webhook: { url: hook.url } } });
    await pub.idle();

    await rm(w.tmp.file('config/other.yaml'));
    await until(() => hot.get('other') === undefined, 'other removed');
    await pub.idle();
    expect(hook.requests.at(-1)?.body).toEqual({
      version: hot.version,
      changed: [],
      removed: ['other'],
      hashes: { app: hot.snapshot().configs.get('app')?.hash },
    });
  });

  it('a receiver that fails the first 2 attempts with 500 still gets the notice, by retrying', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver((_body, count) => (count <= 2 ? 500 : 200));
    const rec = recorder();
    await using pub = await startPublisher(hot, { notify: { webhook: { url: hook.url, backoffMs: 5 } }, onResult: rec.onResult });
    await pub.idle();

    expect(hook.versions()).toEqual([1, 1, 1]);
    expect(rec.of('webhook')).toMatchObject([{ ok: true, version: 1 }]);
  });

  it('a status listed in successCodes counts as success (no retry); one not listed is a failure', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using teapot = await receiver(() => 418);
    const rec = recorder();
    await using pub = await startPublisher(hot, {
      notify: { webhook: { url: teapot.url, successCodes: [418], retries: 3 } },
      onResult: rec.onResult,
    });
    await pub.idle();
    expect(teapot.requests).toHaveLength(1);
    expect(rec.of('webhook')).toMatchObject([{ ok: true }]);

    await using noContent = await receiver(() => 204);
    pub.setNotify({ webhook: { url: noContent.url, successCodes: [200], retries: 1, backoffMs: 5 } });
    await w.configAtomic('app.yaml', 'port: 1\nn: 1\n');
    await until(() => rec.of('webhook').length === 2, 'second outcome');
    expect(noContent.requests).toHaveLength(2);
    expect(rec.of('webhook')[1]).toMatchObject({ ok: false, version: hot.version });
  });

  it('the timeout is enforced: a receiver that never answers is a failure within about timeoutMs × attempts', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver(() => 'hang');
    const rec = recorder();
    const t0 = Date.now();
    await using _pub = await startPublisher(hot, {
      notify: { webhook: { url: hook.url, timeoutMs: 300, retries: 1, backoffMs: 10, maxBackoffMs: 10 } },
      onResult: rec.onResult,
    });
    const result = await until(() => rec.of('webhook')[0], 'failure reported');
    expect(result).toMatchObject({ ok: false, version: 1 });
    expect(hook.requests).toHaveLength(2);
    expect(result.at - t0).toBeGreaterThanOrEqual(2 * 300 - 20);
    expect(result.at - t0).toBeLessThan(2 * 300 + 1500);
  });

  it('header values and URL credentials never reach the logs, even at debug level', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver((_body, count) => (count <= 2 ? 503 : 200));
    const log = await memoryLogger('debug');
    await using pub = await startPublisher(hot, {
      notify: {
        webhook: { url: `${hook.url}?token=query-s3cret`, backoffMs: 5, headers: { authorization: 'Bearer header-s3cret' } },
      },
      logger: log.logger,
    });
    await pub.idle();

    expect(hook.requests[0]?.headers.authorization).toBe('Bearer header-s3cret');
    expect(log.text()).toContain('webhook attempt failed');
    expect(log.text()).not.toContain('s3cret');
  });

  it('a newer version supersedes the pending retries of an older one, and carries its changes', async () => {
    await using w = await twoConfigs();
    await using hot = await start(w);
    await using hook = await receiver((body) => (body.version === 1 ? 500 : 200));
    const rec = recorder();
    await using pub = await startPublisher(hot, {
      // Backoffs of seconds: without superseding, idle() below would wait for them and v1 would end as a failure.
      notify: { webhook: { url: hook.url, retries: 3, backoffMs: 2000, maxBackoffMs: 2000 } },
      onResult: rec.onResult,
    });
    await until(() => hook.requests.length > 0, 'first attempt');
    await w.configAtomic('other.yaml', 'port: 3\n');
    await until(() => hot.version === 2, 'v2 committed');
    await pub.idle();

    expect(rec.of('webhook')).toMatchObject([{ ok: true, version: 2 }]);
    expect(hook.versions().filter((v) => v === 1).length).toBeLessThan(4);
    // v1 never got through, so v2's notice says everything v1 would have.
    expect(hook.requests.at(-1)?.body).toMatchObject({ version: 2, changed: ['app', 'other'] });
  });
});
