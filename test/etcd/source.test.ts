// The etcd source feeding the real pipeline, against a real etcd (Debian's etcd-server): revision-consistent
// start, one version per etcd revision, last good on invalid values, deletes, cuts, compaction, reload.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { createHotconf, HotconfError, type Change, type HotconfOptions } from '../../src/index.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';
import { memoryLogger, tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, tcpProxy, type EtcdServer } from './etcd-server.js';

let etcd: EtcdServer;
let client: Etcd3;
let schemas: TempDir;
let n = 0;
/** A fresh prefix per test: tests share one etcd, never keys. */
const freshPrefix = () => `/hotconf-test/${process.pid}-${n++}/`;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  schemas = await tempDir();
  for (const name of ['app', 'db/primary', 'a', 'b', 'c']) await schemas.write(`${name}.schema.json`, JSON.stringify(SERVICE_SCHEMA));
});

afterAll(async () => {
  await etcd?.stop();
  await schemas?.[Symbol.asyncDispose]();
});

async function hotconf(prefix: string, options: Partial<HotconfOptions> = {}, url = etcd.url) {
  const log = await memoryLogger();
  const hot = await createHotconf({
    etcd: { endpoints: [url], prefix, reconnectMinMs: 50, reconnectMaxMs: 500 },
    schemaDir: schemas.dir,
    logger: log.logger,
    ...options,
  });
  return Object.assign(hot, { logs: log });
}

describe.skipIf(!HAVE_ETCD)('etcd source', () => {
  test('the initial load is the prefix at one revision: configs by the file naming rules, unknown keys ignored once', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 8080\n');
    await client.put(`${prefix}db/primary.json`).value('{"port": 5432, "host": "db"}');
    await client.put(`${prefix}README.txt`).value('not a config');
    const last = await client.put(`${prefix}notes.md`).value('neither');
    await client.put('/elsewhere/app.yaml').value('port: "outside the prefix"');

    await using hot = await hotconf(prefix);
    expect(hot.get('app')).toEqual({ port: 8080 });
    expect(hot.get('db/primary')).toEqual({ port: 5432, host: 'db' });
    expect([...hot.snapshot().configs.keys()].sort()).toEqual(['app', 'db/primary']);
    expect(BigInt(hot.snapshot().sourceRevision!)).toBeGreaterThanOrEqual(BigInt(last.header.revision));
    expect(hot.snapshot().configs.get('app')!.path).toBe(`etcd:${prefix}app.yaml`);
    const status = hot.status();
    expect(status.source).toMatchObject({ kind: 'etcd', connected: true, prefix });
    expect(status.sourceRevision).toBe(hot.snapshot().sourceRevision);
    const ignored = hot.logs.lines.filter((l) => l.msg === 'etcd key ignored: not <name>.yaml, .yml or .json under the prefix');
    expect(ignored.map((l) => l.key).sort()).toEqual([`etcd:${prefix}README.txt`, `etcd:${prefix}notes.md`]);

    // A later write to an ignored key is not logged again.
    await client.put(`${prefix}README.txt`).value('still not a config');
    const rev = (await client.put(`${prefix}app.yaml`).value('port: 8081\n')).header.revision;
    await until(() => hot.snapshot().sourceRevision === rev, 'the write to app');
    expect(hot.logs.lines.filter((l) => l.msg === 'etcd key ignored: not <name>.yaml, .yml or .json under the prefix')).toHaveLength(2);
  });

  test('a transaction that writes several keys is exactly one version, at its revision', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}a.yaml`).value('port: 1\n');
    await using hot = await hotconf(prefix);
    const changes: Change[] = [];
    using _sub = hot.onConfigChange((c) => void changes.push(c));
    const before = hot.version;

    const txn = await client
      .if(`${prefix}a.yaml`, 'Version', '>', 0)
      .then(client.put(`${prefix}a.yaml`).value('port: 2\n'), client.put(`${prefix}b.yaml`).value('port: 3\n'), client.put(`${prefix}c.json`).value('{"port": 4}'))
      .commit();
    expect(txn.succeeded).toBe(true);

    await until(() => hot.snapshot().sourceRevision === txn.header.revision, `sourceRevision ${txn.header.revision}`);
    await until(() => changes.length === 1, 'the subscriber to hear of it');
    expect(hot.version).toBe(before + 1);
    expect(changes[0]!.changed).toEqual(['a', 'b', 'c']);
    expect(changes[0]!.current.sourceRevision).toBe(txn.header.revision);
    expect([hot.get('a'), hot.get('b'), hot.get('c')]).toEqual([{ port: 2 }, { port: 3 }, { port: 4 }]);
  });

  test('an invalid value keeps the last good config and is reported with its key, line and pointer', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 8080\n');
    await using hot = await hotconf(prefix);
    const good = hot.snapshot();

    const bad = await client.put(`${prefix}app.yaml`).value('host: x\nport: "eighty"\n');
    await until(() => hot.status().errors === 1, 'the error to be reported');
    const status = hot.status();
    const app = status.configs.find((c) => c.name === 'app')!;
    expect(app.state).toBe('error');
    expect(app.error!.message).toBe(`etcd:${prefix}app.yaml:2:7: /port: must be integer`);
    expect(hot.get('app')).toEqual({ port: 8080 });
    expect(hot.snapshot()).toBe(good); // nothing committed, not even a new revision
    expect(BigInt(bad.header.revision)).toBeGreaterThan(BigInt(good.sourceRevision!));

    // Hostile input is refused the same way as in a file.
    await client.put(`${prefix}app.yaml`).value('a: &a [*a]\nport: 1\n');
    await until(() => hot.status().configs.find((c) => c.name === 'app')?.error?.message.startsWith(`etcd:${prefix}app.yaml`) && hot.status().configs.find((c) => c.name === 'app')?.error?.code !== 'E_SCHEMA', 'the parse error');
    expect(hot.get('app')).toEqual({ port: 8080 });

    const fixed = await client.put(`${prefix}app.yaml`).value('port: 9090\n');
    await until(() => hot.snapshot().sourceRevision === fixed.header.revision, 'the fix');
    expect(hot.get('app')).toEqual({ port: 9090 });
    expect(hot.status().errors).toBe(0);
  });

  test('a value over maxFileBytes is refused like a large file', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await using hot = await hotconf(prefix, { maxFileBytes: 64 });
    await client.put(`${prefix}app.yaml`).value(`port: 2\nhost: "${'x'.repeat(100)}"\n`);
    await until(() => hot.status().errors === 1, 'the size error');
    expect(hot.status().configs[0]!.error).toMatchObject({ code: 'E_TOO_LARGE', file: `etcd:${prefix}app.yaml` });
    expect(hot.get('app')).toEqual({ port: 1 });
  });

  test('a deleted key removes its config, as a deleted file does', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await client.put(`${prefix}db/primary.yaml`).value('port: 2\n');
    await using hot = await hotconf(prefix);
    const changes: Change[] = [];
    using _sub = hot.onConfigChange((c) => void changes.push(c));

    const del = await client.delete().key(`${prefix}db/primary.yaml`);
    await until(() => hot.snapshot().sourceRevision === del.header.revision, 'the delete');
    expect(hot.get('db/primary')).toBeUndefined();
    await until(() => changes.length === 1, 'the change');
    expect(changes[0]!.removed).toEqual(['db/primary']);
    expect(hot.get('app')).toEqual({ port: 1 });
  });

  test('a cut connection keeps the last good config served and resumes after the last revision seen, without loss', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await using proxy = await tcpProxy(etcd.url);
    await using hot = await hotconf(prefix, {}, proxy.url);
    const changes: Change[] = [];
    using _sub = hot.onConfigChange((c) => void changes.push(c));

    proxy.cut();
    await until(() => hot.status().source.connected === false, 'the source to report the cut');
    expect(hot.status().source).toMatchObject({ state: 'disconnected' });
    expect(typeof (hot.status().source as { lastError?: string }).lastError).toBe('string');
    expect(hot.status().ready).toBe(true);
    // reload() cannot re-read now: it says why instead of waiting for etcd, and nothing changes.
    const reload = await hot.reload().catch((e: unknown) => e);
    expect((reload as HotconfError).code).toBe('E_SOURCE_UNAVAILABLE');
    // Three revisions while cut off: all of them must arrive, from the watch, not from a re-read.
    await client.put(`${prefix}app.yaml`).value('port: 2\n');
    await client.put(`${prefix}b.yaml`).value('port: 3\n');
    const last = await client.put(`${prefix}app.yaml`).value('port: 4\n');
    expect(hot.get('app')).toEqual({ port: 1 });

    proxy.heal();
    await until(() => hot.snapshot().sourceRevision === last.header.revision, 'the writes made while cut off');
    expect(hot.get('app')).toEqual({ port: 4 });
    expect(hot.get('b')).toEqual({ port: 3 });
    expect(hot.status().source).toMatchObject({ connected: true, resyncs: 0 });
    expect(changes.at(-1)!.current.sourceRevision).toBe(last.header.revision);
  });

  test('a compaction past the watch revision is one full re-read, diffed against the store, one version', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await client.put(`${prefix}a.yaml`).value('port: 10\n');
    await client.put(`${prefix}b.yaml`).value('port: 20\n');
    await using proxy = await tcpProxy(etcd.url);
    await using hot = await hotconf(prefix, {}, proxy.url);
    const changes: Change[] = [];
    using _sub = hot.onConfigChange((c) => void changes.push(c));
    const before = hot.version;

    proxy.cut();
    await until(() => hot.status().source.connected === false, 'the cut');
    await client.put(`${prefix}app.yaml`).value('port: 2\n');
    await client.delete().key(`${prefix}a.yaml`);
    await client.put(`${prefix}c.yaml`).value('port: 30\n');
    const last = await client.put(`${prefix}app.yaml`).value('port: 3\n');
    await client.kv.compact({ revision: last.header.revision, physical: true });
    proxy.heal();

    await until(() => hot.status().source.connected && hot.snapshot().sourceRevision !== undefined && BigInt(hot.snapshot().sourceRevision!) >= BigInt(last.header.revision), 'the re-read');
    expect(hot.status().source).toMatchObject({ resyncs: 1 });
    expect(hot.version).toBe(before + 1);
    await until(() => changes.length === 1, 'one change');
    expect(changes[0]).toMatchObject({ changed: ['app', 'c'], removed: ['a'] });
    expect(Object.fromEntries([...hot.snapshot().configs].map(([k, e]) => [k, e.value]))).toEqual({ app: { port: 3 }, b: { port: 20 }, c: { port: 30 } });

    // And the watch goes on after the re-read.
    const next = await client.put(`${prefix}b.yaml`).value('port: 21\n');
    await until(() => hot.snapshot().sourceRevision === next.header.revision, 'the next write');
    expect(hot.get('b')).toEqual({ port: 21 });
  });

  test('reload() re-reads the prefix and the schemas in one batch', async () => {
    const prefix = freshPrefix();
    await client.put(`${prefix}app.yaml`).value('port: 1\nn: 5\n');
    await using local = await tempDir();
    await local.write('app.schema.json', JSON.stringify(SERVICE_SCHEMA));
    await using hot = await hotconf(prefix, { schemaDir: local.dir });
    await local.write('app.schema.json', JSON.stringify({ ...SERVICE_SCHEMA, properties: { ...SERVICE_SCHEMA.properties, n: { type: 'integer', maximum: 3 } } }));
    const result = await hot.reload();
    expect(result.errors.map((e) => e.message)).toEqual([`etcd:${prefix}app.yaml:2:4: /n: must be <= 3`]);
    expect(hot.get('app')).toEqual({ port: 1, n: 5 });
  });

  test('etcd unreachable at start is a clear error', async () => {
    const err = await createHotconf({
      etcd: { endpoints: ['http://127.0.0.1:1'], prefix: '/x/', requestTimeoutMs: 2000 },
      schemaDir: schemas.dir,
      logger: (await memoryLogger()).logger,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HotconfError);
    expect((err as HotconfError).code).toBe('E_SOURCE_UNAVAILABLE');
    expect((err as HotconfError).message).toMatch(/^etcd \(http:\/\/127\.0\.0\.1:1\) is unreachable: /);
  });

  test('configDir and etcd together, or neither, are refused with a clear error', async () => {
    const both = await createHotconf({ configDir: schemas.dir, etcd: { endpoints: [etcd.url], prefix: '/x/' }, schemaDir: schemas.dir }).catch((e: unknown) => e);
    expect((both as HotconfError).code).toBe('E_OPTIONS');
    expect((both as HotconfError).message).toContain('`configDir` and `etcd` are mutually exclusive');
    const neither = await createHotconf({ schemaDir: schemas.dir }).catch((e: unknown) => e);
    expect((neither as HotconfError).message).toContain('`configDir` (a directory path) or `etcd` is required');
  });
});
