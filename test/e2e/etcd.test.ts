// The fleet path as a user drives it: `hotconf push` into a real etcd, `hotconf run --etcd` as a real child
// process serving HTTP, and etcd killed under it.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { tempDir, until, type TempDir } from '../helpers.js';
import { pushEntries } from '../../src/source/etcd/push.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from '../etcd/etcd-server.js';
import { hotconf, startHotconf } from './cli-helpers.js';

const SCHEMA = JSON.stringify({
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: { port: { type: 'integer' }, host: { type: 'string' }, password: { type: 'string', writeOnly: true } },
});

let etcd: EtcdServer;
let client: Etcd3;
let tmp: TempDir;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  tmp = await tempDir();
  for (const name of ['app', 'db/primary', 'features']) await tmp.write(`schemas/${name}.schema.json`, SCHEMA);
});
afterAll(async () => {
  await etcd?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

const revisions = async (prefix: string) =>
  Object.fromEntries((await client.getAll().prefix(prefix).exec()).kvs.map((kv) => [kv.key.toString(), kv.mod_revision]));

describe.skipIf(!HAVE_ETCD)('hotconf push and run --etcd', () => {
  test('push refuses an invalid directory without writing anything, and lands a valid one in one revision', async () => {
    await tmp.write('bad/app.yaml', 'port: 80\n');
    await tmp.write('bad/db/primary.yaml', 'host: db\nport: "5432"\n');
    const bad = await hotconf(['push', '--plain', '--etcd', etcd.url, '--etcd-prefix', '/push1/', '--config-dir', tmp.file('bad'), '--schema-dir', tmp.file('schemas')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${tmp.file('bad/db/primary.yaml')}:2:7: /port: must be integer`);
    expect(bad.stderr).toContain('nothing was written to etcd');
    expect(await revisions('/push1/')).toEqual({});

    await tmp.write('good/app.yaml', 'port: 80\n');
    await tmp.write('good/db/primary.yaml', 'host: db\nport: 5432\n');
    await tmp.write('good/features.json', '{"port": 1}');
    const good = await hotconf(['push', '--plain', '--etcd', etcd.url, '--etcd-prefix', '/push1', '--config-dir', tmp.file('good'), '--schema-dir', tmp.file('schemas')]);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    const rev = /revision (\d+)$/m.exec(good.stdout)?.[1];
    expect(good.stdout).toContain('+ /push1/db/primary.yaml');
    expect(await revisions('/push1/')).toEqual({ '/push1/app.yaml': rev, '/push1/db/primary.yaml': rev, '/push1/features.json': rev });

    // --prune deletes what the directory no longer has (--dry-run: the README walkthrough test and push.test.ts).
    await tmp.write('good/app.yaml', 'port: 81\n');
    await client.put('/push1/stale.yaml').value('port: 1\n');
    const pruned = await hotconf(['push', '--plain', '--etcd', etcd.url, '--etcd-prefix', '/push1/', '--config-dir', tmp.file('good'), '--schema-dir', tmp.file('schemas'), '--prune', '--json']);
    expect(pruned.code).toBe(0);
    expect(JSON.parse(pruned.stdout)).toMatchObject({ put: ['/push1/app.yaml'], removed: ['/push1/stale.yaml'] });
    expect(Object.keys(await revisions('/push1/')).sort()).toEqual(['/push1/app.yaml', '/push1/db/primary.yaml', '/push1/features.json']);
  });

  test('two concurrent pushes never interleave: etcd ends holding exactly one of the two directories', async () => {
    for (const [dir, port] of [['one', 1], ['two', 2]] as const) {
      await tmp.write(`${dir}/app.yaml`, `port: ${port}\n`);
      await tmp.write(`${dir}/features.yaml`, `port: ${port}\n`);
      await tmp.write(`${dir}/db/primary-${dir}.yaml`, `port: ${port}\n`);
      await tmp.write(`schemas/db/primary-${dir}.schema.json`, SCHEMA);
    }
    const push = (dir: string) => hotconf(['push', '--plain', '--etcd', etcd.url, '--etcd-prefix', '/push2/', '--config-dir', tmp.file(dir), '--schema-dir', tmp.file('schemas'), '--prune']);
    const [a, b] = await Promise.all([push('one'), push('two')]);
    for (const r of [a, b]) expect(r.code === 0 || (r.code === 3 && r.stderr.includes('kept changing during the push'))).toBe(true);
    const final = await client.getAll().prefix('/push2/').strings();
    const ports = new Set(Object.values(final));
    expect(ports.size).toBe(1);
    const port = [...ports][0]!.trim();
    const dir = port === 'port: 1' ? 'one' : 'two';
    expect(Object.keys(final).sort()).toEqual(['/push2/app.yaml', `/push2/db/primary-${dir}.yaml`, '/push2/features.yaml']);
  });

  test('run --etcd serves the configs over HTTP with their sourceRevision, follows pushes, and reports a lost etcd while serving the last good', async () => {
    // The CLI's push is the test above; here the same transaction from the library keeps this test quick.
    const rev1 = (await pushEntries(client, '/fleet/', new Map([['/fleet/app.yaml', Buffer.from('port: 8080\npassword: hunter2\n')]]))).revision!;

    await using d = startHotconf(['run', '--etcd', etcd.url, '--etcd-prefix', '/fleet/', '--schema-dir', tmp.file('schemas'), '--http', '127.0.0.1:0', '--publish-dir', tmp.file('published'), '--no-pretty']);
    const url = String((await d.line((l) => l.msg === 'http listening' || l.level === 60, 'the API listening', 15_000)).url);
    const configs = async () => (await (await fetch(`${url}/v1/configs`)).json()) as { version: number; sourceRevision: string | null; configs: Array<{ name: string }> };
    expect(await configs()).toMatchObject({ sourceRevision: rev1, configs: [{ name: 'app' }] });
    expect(await (await fetch(`${url}/v1/configs/app`)).json()).toEqual({ port: 8080, password: '[REDACTED]' });

    const rev2 = (await pushEntries(client, '/fleet/', new Map([['/fleet/app.yaml', Buffer.from('port: 8081\npassword: hunter2\n')]]))).revision!;
    await until(async () => (await configs()).sourceRevision === rev2, `sourceRevision ${rev2}`);
    expect(await (await fetch(`${url}/v1/configs/app`)).json()).toMatchObject({ port: 8081 });
    // publish is the same as for files: the validated value lands in the publish dir.
    await until(async () => (JSON.parse(await readFile(tmp.file('published/app.json'), 'utf8')) as { port: number }).port === 8081, 'the published app.json');
    const metrics = async () => (await fetch(`${url}/metrics`)).text();
    expect(await metrics()).toContain('hotconf_source_connected{source="etcd"} 1');
    expect(await metrics()).toContain(`hotconf_source_revision ${rev2}`);

    await etcd.kill9();
    try {
      await until(async () => (await metrics()).includes('hotconf_source_connected{source="etcd"} 0'), 'the metric to say disconnected');
      const status = (await (await fetch(`${url}/v1/status`)).json()) as { source: { state: string }; sourceRevision: string };
      expect(status).toMatchObject({ source: { state: 'disconnected' }, sourceRevision: rev2 });
      expect(await (await fetch(`${url}/v1/configs/app`)).json()).toMatchObject({ port: 8081 });
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      await etcd.restart();
    }
    const put = await client.put('/fleet/app.yaml').value('port: 8082\n');
    await until(async () => (await configs()).sourceRevision === put.header.revision, 'the write after the restart', { timeoutMs: 15_000 });
    expect(await metrics()).toContain('hotconf_source_connected{source="etcd"} 1');

    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(d.stderr()).not.toContain('hunter2');
    expect(JSON.stringify(d.lines)).not.toContain('hunter2');
  });

  test('run refuses an unreachable etcd at start with exit 3 (--config-dir with --etcd: test/daemon/etcd-settings.test.ts)', async () => {
    const down = await hotconf(['run', '--etcd', 'http://127.0.0.1:1', '--etcd-prefix', '/x/', '--schema-dir', tmp.file('schemas'), '--no-pretty']);
    expect(down.code).toBe(3);
    expect(down.stdout).toContain('etcd (http://127.0.0.1:1) is unreachable');
  });
});
