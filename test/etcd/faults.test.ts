// etcd itself failing under a running hotconf: kill -9 and a restart on the same data dir, and etcd's auth
// (whose tokens a restarted etcd forgets). Each test owns its etcd.
import { describe, expect, test } from 'vitest';
import { createHotconf, type HotconfOptions } from '../../src/index.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';
import { memoryLogger, tempDir, until } from '../helpers.js';
import { HAVE_ETCD, makeCerts, startEtcd } from './etcd-server.js';

async function schemaDir() {
  const dir = await tempDir();
  await dir.write('app.schema.json', JSON.stringify(SERVICE_SCHEMA));
  await dir.write('b.schema.json', JSON.stringify(SERVICE_SCHEMA));
  return dir;
}

async function hotconf(etcd: HotconfOptions['etcd'], schemas: string) {
  const log = await memoryLogger();
  const hot = await createHotconf({ etcd: { reconnectMinMs: 50, reconnectMaxMs: 400, ...etcd! }, schemaDir: schemas, logger: log.logger });
  return Object.assign(hot, { logs: log });
}

describe.skipIf(!HAVE_ETCD)('etcd faults', () => {
  test('kill -9 of etcd: the last good config stays served, status says disconnected; after a restart on the same data dir updates resume', async () => {
    await using etcd = await startEtcd();
    await using schemas = await schemaDir();
    const client = etcd.client();
    await client.put('/f/app.yaml').value('port: 1\n');
    const seen = await client.put('/f/app.yaml').value('port: 2\n');
    await using hot = await hotconf({ endpoints: [etcd.url], prefix: '/f/' }, schemas.dir);
    expect(hot.snapshot().sourceRevision).toBe(seen.header.revision);

    await etcd.kill9();
    await until(() => hot.status().source.connected === false, 'the source to say disconnected');
    expect(hot.status().source).toMatchObject({ kind: 'etcd', state: 'disconnected' });
    expect(typeof (hot.status().source as { lastError?: string }).lastError).toBe('string');
    expect(hot.get('app')).toEqual({ port: 2 });
    expect(hot.status()).toMatchObject({ ready: true, errors: 0 });
    expect(hot.health().healthy).toBe(true);

    await etcd.restart();
    // Two revisions right after the restart, one of them a transaction: both arrive, in order, none lost.
    const first = await client.put('/f/app.yaml').value('port: 3\n');
    const txn = await client
      .if('/f/app.yaml', 'Mod', '==', first.header.revision)
      .then(client.put('/f/app.yaml').value('port: 4\n'), client.put('/f/b.yaml').value('port: 5\n'))
      .commit();
    await until(() => hot.snapshot().sourceRevision === txn.header.revision, 'the writes after the restart', { timeoutMs: 15_000 });
    expect(hot.get('app')).toEqual({ port: 4 });
    expect(hot.get('b')).toEqual({ port: 5 });
    expect(hot.status().source).toMatchObject({ connected: true, resyncs: 0 });
    expect(hot.logs.lines.some((l) => l.msg === 'etcd connection restored; resuming after the last revision seen')).toBe(true);
  });

  test('auth: a user with the right password reads the prefix, survives an etcd restart (a new token), and a wrong password is a clear error', async () => {
    await using etcd = await startEtcd();
    await using schemas = await schemaDir();
    await etcd.enableAuth('s3cret-pw');
    const root = etcd.client({ username: 'root', password: 's3cret-pw' });
    await root.put('/a/app.yaml').value('port: 1\n');

    const wrong = await hotconf({ endpoints: [etcd.url], prefix: '/a/', username: 'root', password: 'nope' }, schemas.dir).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'E_SOURCE_AUTH', message: `etcd (${etcd.url}): authentication failed: wrong username or password` });
    const anonymous = await hotconf({ endpoints: [etcd.url], prefix: '/a/' }, schemas.dir).catch((e: unknown) => e);
    expect(anonymous).toMatchObject({ code: 'E_SOURCE_AUTH' });

    await using hot = await hotconf({ endpoints: [etcd.url], prefix: '/a/', username: 'root', password: 's3cret-pw' }, schemas.dir);
    expect(hot.get('app')).toEqual({ port: 1 });
    expect(JSON.stringify(hot.logs.lines)).not.toContain('s3cret-pw');

    // etcd's simple tokens live in the member's memory: after a restart the old one is refused.
    await etcd.kill9();
    await until(() => hot.status().source.connected === false, 'the disconnect');
    await etcd.restart();
    const put = await root.put('/a/app.yaml').value('port: 2\n');
    await until(() => hot.snapshot().sourceRevision === put.header.revision, 'the write after the restart', { timeoutMs: 15_000 });
    expect(hot.get('app')).toEqual({ port: 2 });
  });

  test('an etcd that comes back as a new cluster (data lost, revisions from 1) is read again in full, not watched from a future revision', async () => {
    await using etcd = await startEtcd();
    await using schemas = await schemaDir();
    const client = etcd.client();
    for (let i = 0; i < 10; i++) await client.put('/r/app.yaml').value(`port: ${i + 1}\n`);
    await client.put('/r/b.yaml').value('port: 7\n');
    await using hot = await hotconf({ endpoints: [etcd.url], prefix: '/r/' }, schemas.dir);
    const before = hot.snapshot().sourceRevision!;

    await etcd.kill9();
    await etcd.wipe();
    await etcd.restart();
    const put = await client.put('/r/app.yaml').value('port: 99\n');
    expect(BigInt(put.header.revision)).toBeLessThan(BigInt(before));
    await until(() => hot.get('app') !== undefined && (hot.get('app') as { port: number }).port === 99, 'the new cluster\'s content', { timeoutMs: 15_000 });
    expect(hot.get('b')).toBeUndefined();
    expect(hot.snapshot().sourceRevision).toBe(put.header.revision);
    await until(() => hot.status().source.connected, 'the watch on the new cluster');
    expect(hot.status().source).toMatchObject({ resyncs: 1 });
  });

  test('TLS: etcd with client-certificate auth is read with tls { ca, cert, key }; a missing file is named', async () => {
    await using certs = await tempDir();
    const files = await makeCerts(certs.dir);
    await using etcd = await startEtcd({ tls: files });
    await using schemas = await schemaDir();
    await etcd.ctl('put', '/t/app.yaml', 'port: 443');

    await using hot = await hotconf({ endpoints: [etcd.url], prefix: '/t/', tls: { ca: files.ca, cert: files.clientCert, key: files.clientKey } }, schemas.dir);
    expect(hot.get('app')).toEqual({ port: 443 });
    await etcd.ctl('put', '/t/app.yaml', 'port: 8443');
    await until(() => (hot.get('app') as { port: number }).port === 8443, 'the change over TLS');

    const missing = await hotconf({ endpoints: [etcd.url], prefix: '/t/', tls: { ca: certs.file('nope.crt') } }, schemas.dir).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'E_OPTIONS' });
    expect((missing as Error).message).toContain(`etcd.tls.ca: cannot read ${certs.file('nope.crt')}`);
  });
});
