// The instance side of fleet releases (issue 15), against a real etcd: an instance serves exactly the release the
// head names for its id, switches in one version whatever the release's size, holds only that release's bytes,
// registers itself under a lease, referees an --auto canary, and starts from its cached release while etcd is down.
// Releases are written here with the shared layout functions (fleet-writer.ts).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { createHotconf, type Change, type HotconfOptions } from '../../src/index.js';
import { cacheFileOf } from '../../src/source/etcd/index.js';
import { fleetKeys } from '../../src/source/etcd/layout.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';
import { memoryLogger, tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from './etcd-server.js';
import { endCanary, instances, publish, readHead } from './release-writer.js';

let etcd: EtcdServer;
let client: Etcd3;
let schemas: TempDir;
let strict: TempDir;
let n = 0;
const freshPrefix = () => `/hotconf-fleet/${process.pid}-${n++}/`;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  schemas = await tempDir();
  strict = await tempDir();
  for (const name of ['app', 'db/primary', 'a', 'b']) {
    await schemas.write(`${name}.schema.json`, JSON.stringify(SERVICE_SCHEMA));
    // The stricter schema of a canary instance: ports under 1024 only.
    await strict.write(`${name}.schema.json`, JSON.stringify({ ...SERVICE_SCHEMA, properties: { ...SERVICE_SCHEMA.properties, port: { type: 'integer', minimum: 1, maximum: 1023 } } }));
  }
}, 30_000);

afterAll(async () => {
  await etcd?.stop();
  await schemas?.[Symbol.asyncDispose]();
  await strict?.[Symbol.asyncDispose]();
});

async function instance(prefix: string, id: string, options: Partial<HotconfOptions> & { cacheDir?: string } = {}, url = etcd.url) {
  const log = await memoryLogger();
  const { cacheDir, ...rest } = options;
  const hot = await createHotconf({
    etcd: { endpoints: [url], prefix, reconnectMinMs: 50, reconnectMaxMs: 300, requestTimeoutMs: 2000, instanceId: id, ...(cacheDir ? { cacheDir } : {}) },
    schemaDir: schemas.dir,
    logger: log.logger,
    ...rest,
  });
  return Object.assign(hot, { logs: log });
}

const files = (entries: Record<string, string>) => new Map(Object.entries(entries));

describe.skipIf(!HAVE_ETCD)('etcd release mode (instances)', () => {
  test('a 2,000-config, 20 MB release lands on two instances in one version each, every name in one batch', async () => {
    const prefix = freshPrefix();
    await publish(client, prefix, files({ 'app.yaml': 'port: 1\n' }));
    const opts = { requireSchema: false };
    await using one = await instance(prefix, 'one', opts);
    await using two = await instance(prefix, 'two', opts);
    expect(one.snapshot().sourceRelease).toBe(1);
    expect(one.get('app')).toEqual({ port: 1 });

    const changes: Change[][] = [[], []];
    using _a = one.onConfigChange((c) => void changes[0]!.push(c));
    using _b = two.onConfigChange((c) => void changes[1]!.push(c));
    // 2,000 JSON configs of ~10 KB each: ~20 MB in all.
    const big = new Map<string, string>();
    const pad = 'x'.repeat(10_000);
    for (let i = 0; i < 2000; i++) big.set(`svc/c${String(i).padStart(4, '0')}.json`, JSON.stringify({ i, pad }));
    const { release, revision } = await publish(client, prefix, big);
    expect(release).toBe(2);

    for (const [i, hot] of [one, two].entries()) {
      await until(() => hot.snapshot().sourceRelease === 2, `instance ${i} on release 2`, { timeoutMs: 60_000 });
      // One version: the whole release at once (2,000 new names, app removed), never a part of it.
      expect(changes[i]).toHaveLength(1);
      expect(changes[i]![0]!.changed).toHaveLength(2000);
      expect(changes[i]![0]!.removed).toEqual(['app']);
      expect(hot.snapshot().configs.size).toBe(2000);
      expect(hot.get('svc/c1999')).toEqual({ i: 1999, pad });
      expect(hot.snapshot().sourceRevision).toBe(revision);
      expect(hot.status().source).toMatchObject({ mode: 'release', release: 2, target: 2 });
    }

    // The next release changes one config: one blob fetched, the other 1,999 are held (only this release's bytes).
    const next = new Map(big);
    next.set('svc/c0007.json', JSON.stringify({ i: 7, pad: 'changed' }));
    await publish(client, prefix, next);
    await until(() => one.snapshot().sourceRelease === 3, 'release 3', { timeoutMs: 30_000 });
    expect(changes[0]).toHaveLength(2);
    expect(changes[0]![1]!.changed).toEqual(['svc/c0007']);
    const read = one.logs.lines.filter((l) => l.msg === 'release 3 read');
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ configs: 2000, fetched: 1 });
  }, 120_000);

  test('a prefix of plain keys moves to release mode in one version; plain keys are then ignored, with one warning', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await using hot = await instance(prefix, 'solo');
    expect(hot.status().source).toMatchObject({ mode: 'plain', release: null, target: null, instanceId: 'solo' });
    expect(hot.snapshot().sourceRelease).toBeUndefined();
    // Plain mode writes nothing to etcd (no record, no heartbeat: the revision moves only with the configs).
    expect(await instances(client, prefix)).toEqual([]);

    const { revision } = await publish(client, prefix, files({ 'app.yaml': 'port: 2\n', 'db/primary.json': '{"port": 5432}' }));
    await until(() => hot.snapshot().sourceRelease === 1, 'release 1');
    expect(hot.snapshot().sourceRevision).toBe(revision);
    expect(hot.get('app')).toEqual({ port: 2 });
    expect(hot.get('db/primary')).toEqual({ port: 5432 });
    const warned = (key: string) => hot.logs.lines.filter((l) => l.msg === `prefix is in release mode; plain key etcd:${prefix}${key} ignored`);
    expect(warned('app.yaml')).toHaveLength(1);
    await until(async () => (await instances(client, prefix)).some((r) => r.id === 'solo' && r.release === 1), 'its record');

    // A plain write in release mode changes nothing served (release mode follows the head alone; a full read,
    // here a reload, sees the plain key and warns).
    await client.put(`${prefix}app.yaml`).value('port: 3\n');
    await client.put(`${prefix}b.yaml`).value('port: 4\n');
    await hot.reload();
    expect(warned('b.yaml')).toHaveLength(1);
    expect(hot.get('app')).toEqual({ port: 2 });
    expect(hot.get('b')).toBeUndefined();
    expect(warned('app.yaml')).toHaveLength(1);

    // The head deleted: the plain keys are the configs again.
    await client.delete().key(fleetKeys(prefix).head);
    await until(() => (hot.get('app') as { port?: number } | undefined)?.port === 3, 'plain mode again');
    expect(hot.get('b')).toEqual({ port: 4 });
    expect(hot.get('db/primary')).toBeUndefined();
    expect(hot.snapshot().sourceRelease).toBeUndefined();
    expect(hot.status().source).toMatchObject({ mode: 'plain', release: null });
    await until(async () => (await instances(client, prefix)).length === 0, 'the record gone with release mode');
  });

  test('a canary goes to the chosen ids only; abort returns them to stable, promote sends it to all', async () => {
    const prefix = freshPrefix();
    await publish(client, prefix, files({ 'app.yaml': 'port: 1\n' }));
    await using a = await instance(prefix, 'a');
    await using b = await instance(prefix, 'b');
    await using c = await instance(prefix, 'c');
    await until(async () => (await instances(client, prefix)).length === 3, 'three records');

    await publish(client, prefix, files({ 'app.yaml': 'port: 2\n' }), { canary: { ids: ['b'] } });
    await until(() => b.snapshot().sourceRelease === 2, 'b on the canary');
    expect(b.get('app')).toEqual({ port: 2 });
    await until(async () => (await instances(client, prefix)).find((r) => r.id === 'b')?.release === 2, "b's record");
    for (const other of [a, c]) {
      expect(other.snapshot().sourceRelease).toBe(1);
      expect(other.get('app')).toEqual({ port: 1 });
    }
    const fleet = await a.fleet();
    expect(fleet).toMatchObject({ stable: 1, canary: { release: 2, ids: ['b'], auto: null } });
    expect(fleet!.instances.map((i) => [i.id, i.release, i.target, i.state])).toEqual([
      ['a', 1, 1, 'ok'],
      ['b', 2, 2, 'ok'],
      ['c', 1, 1, 'ok'],
    ]);

    await endCanary(client, prefix, 'abort');
    await until(() => b.snapshot().sourceRelease === 1, 'b back on stable');
    expect(b.get('app')).toEqual({ port: 1 });

    await publish(client, prefix, files({ 'app.yaml': 'port: 3\n' }), { canary: { ids: ['c'] } });
    await until(() => c.snapshot().sourceRelease === 3, 'c on the canary');
    expect(a.snapshot().sourceRelease).toBe(1);
    await endCanary(client, prefix, 'promote');
    for (const hot of [a, b, c]) await until(() => hot.snapshot().sourceRelease === 3, 'all on release 3');
    for (const hot of [a, b, c]) expect(hot.get('app')).toEqual({ port: 3 });
  }, 60_000);

  test('an instance record appears with the instance and goes with it', async () => {
    const prefix = freshPrefix();
    await publish(client, prefix, files({ 'app.yaml': 'port: 1\n' }));
    const hot = await instance(prefix, 'pod-7');
    const records = await until(async () => {
      const r = await instances(client, prefix);
      return r.length === 1 && r[0]!.release === 1 ? r : undefined;
    }, 'the record');
    expect(records[0]).toMatchObject({ id: 'pod-7', release: 1, target: 1, state: 'ok', errors: 0, pid: process.pid });
    expect(records[0]!.appliedAt).toBeGreaterThan(0);
    // Under a lease: gone when the lease is.
    const kv = (await client.get(fleetKeys(prefix).instance('pod-7')).exec()).kvs[0]!;
    expect(kv.lease).not.toBe('0');
    await hot.close();
    await until(async () => (await instances(client, prefix)).length === 0, 'the record gone after close');
  });

  test('an --auto canary whose instance refuses the release (a stricter schema) is aborted by that instance', async () => {
    const prefix = freshPrefix();
    await publish(client, prefix, files({ 'app.yaml': 'port: 80\n' }));
    await using lax = await instance(prefix, 'lax');
    await using picky = await instance(prefix, 'picky', { schemaDir: strict.dir });
    expect(picky.get('app')).toEqual({ port: 80 });

    const { release } = await publish(client, prefix, files({ 'app.yaml': 'port: 8080\n' }), { canary: { ids: ['picky'], auto: { bakeMs: 60_000 } } });
    const { head } = await until(async () => {
      const h = await readHead(client, prefix);
      return h.head?.canary === null ? h : undefined;
    }, 'the canary aborted', { timeoutMs: 20_000 });
    expect(head).toMatchObject({ stable: 1, canary: null, by: 'instance picky' });
    expect(head!.reason).toMatch(new RegExp(`^auto-abort: instance picky refused release ${release}`));
    // It never served the refused release, and says so in its record until it is back on stable.
    expect(picky.get('app')).toEqual({ port: 80 });
    expect(picky.snapshot().sourceRelease).toBe(1);
    expect(lax.snapshot().sourceRelease).toBe(1);
    await until(async () => (await instances(client, prefix)).find((r) => r.id === 'picky')?.state === 'ok', 'picky ok on stable');
    // Back on stable, the refused config is valid again: nothing left in error.
    expect(picky.status().errors).toBe(0);
    expect(picky.status().configs.map((c) => [c.name, c.state])).toEqual([['app', 'ok']]);
    expect(picky.logs.lines.some((l) => l.msg === `canary release ${release} aborted by this instance`)).toBe(true);
  }, 30_000);

  test('an --auto canary that runs healthily for the bake time is promoted by its instance', async () => {
    const prefix = freshPrefix();
    await publish(client, prefix, files({ 'app.yaml': 'port: 80\n' }));
    await using a = await instance(prefix, 'a');
    await using b = await instance(prefix, 'b');
    await publish(client, prefix, files({ 'app.yaml': 'port: 81\n' }), { canary: { ids: ['a'], auto: { bakeMs: 1500 } } });
    await until(() => a.snapshot().sourceRelease === 2, 'a on the canary');
    expect(b.snapshot().sourceRelease).toBe(1);
    const { head } = await until(async () => {
      const h = await readHead(client, prefix);
      return h.head?.canary === null ? h : undefined;
    }, 'the canary promoted', { timeoutMs: 20_000 });
    expect(head).toMatchObject({ stable: 2, by: 'instance a' });
    expect(head!.reason).toMatch(/^auto-promote: /);
    await until(() => b.snapshot().sourceRelease === 2, 'b on release 2');
    expect(b.get('app')).toEqual({ port: 81 });
  }, 30_000);

  test('started while etcd is down, an instance serves its cached release as stale, then converges', async () => {
    const prefix = freshPrefix();
    const cache = await tempDir();
    try {
      await publish(client, prefix, files({ 'app.yaml': 'port: 1\n', 'db/primary.json': '{"port": 5432, "password": "s3cret"}' }));
      const first = await instance(prefix, 'cached', { cacheDir: path.join(cache.dir, 'state') });
      const file = cacheFileOf(path.join(cache.dir, 'state'), prefix);
      await until(() => stat(file).then(() => true, () => false), 'the cache file');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(path.join(cache.dir, 'state'))).mode & 0o777).toBe(0o700);
      await first.close();

      // Release 2 is published while the instance is away; then etcd goes down.
      await publish(client, prefix, files({ 'app.yaml': 'port: 2\n' }));
      await etcd.kill9();
      // No cache: etcd unreachable at start fails as before.
      await expect(instance(prefix, 'nocache')).rejects.toMatchObject({ code: 'E_SOURCE_UNAVAILABLE' });

      await using hot = await instance(prefix, 'cached', { cacheDir: path.join(cache.dir, 'state') });
      expect(hot.status().ready).toBe(true);
      expect(hot.snapshot().sourceRelease).toBe(1);
      expect(hot.get('app')).toEqual({ port: 1 });
      expect(hot.get('db/primary')).toEqual({ port: 5432, password: 's3cret' });
      expect(hot.status().source).toMatchObject({ stale: true, connected: false, release: 1 });
      expect(hot.logs.lines.some((l) => l.msg === 'etcd is unreachable: serving cached release 1 (stale) until it answers')).toBe(true);

      await etcd.restart();
      await until(() => hot.snapshot().sourceRelease === 2, 'converged to release 2', { timeoutMs: 20_000 });
      expect(hot.get('app')).toEqual({ port: 2 });
      expect(hot.get('db/primary')).toBeUndefined();
      expect(hot.status().source).toMatchObject({ stale: false, staleSince: null, release: 2 });
      await until(async () => (await instances(client, prefix)).find((r) => r.id === 'cached')?.release === 2, 'its record');
    } finally {
      await cache[Symbol.asyncDispose]();
    }
  }, 60_000);
});
