// Fleet instances as they run: releases pushed by the real `hotconf push`, `hotconf run --etcd` as real child
// processes serving HTTP, etcd really stopped and started. An instance restarted while etcd is down serves its cached release as stale (status, metric, systemd
// STATUS=) and converges when etcd answers; its record goes with the process (lease), even after SIGKILL.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import type { UnixDgramSocket } from 'unix-dgram';
import { tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from '../etcd/etcd-server.js';
import { instances } from '../etcd/release-writer.js';
import { hotconf, ROOT, startHotconf, type Daemon } from './cli-helpers.js';

const require = createRequire(import.meta.url);
const { createSocket } = require('unix-dgram') as typeof import('unix-dgram');

const SCHEMA = JSON.stringify({
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: { port: { type: 'integer' }, password: { type: 'string', writeOnly: true } },
});

let etcd: EtcdServer;
let client: Etcd3;
let tmp: TempDir;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  tmp = await tempDir();
  for (const name of ['app', 'db']) await tmp.write(`schemas/${name}.schema.json`, SCHEMA);
}, 30_000);
afterAll(async () => {
  await etcd?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

async function sidecar(prefix: string, id: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon & { url: string }> {
  const d = startHotconf(['run', '--etcd', etcd.url, '--etcd-prefix', prefix, '--schema-dir', tmp.file('schemas'), '--http', '127.0.0.1:0', '--instance-id', id, '--no-pretty', ...extra], { env });
  try {
    const listening = await d.line((l) => l.msg === 'http listening' || l.msg === 'cannot start', `sidecar ${id}`, 20_000);
    if (listening.msg !== 'http listening') throw new Error(`sidecar ${id} did not start: ${JSON.stringify(listening)}`);
    return Object.assign(d, { url: String(listening.url) });
  } catch (err) {
    await d[Symbol.asyncDispose]();
    throw err;
  }
}

let pushes = 0;
/** `hotconf push` of these files (a fresh directory each time): the release number. */
async function publish(prefix: string, files: ReadonlyMap<string, string>): Promise<number> {
  const dir = tmp.file(`push-${pushes++}`);
  for (const [name, text] of files) await tmp.write(`${path.basename(dir)}/${name}`, text);
  const res = await hotconf(['push', '--etcd', etcd.url, '--etcd-prefix', prefix, '--config-dir', dir, '--schema-dir', tmp.file('schemas'), '--json']);
  if (res.code !== 0) throw new Error(`hotconf push exited ${res.code}: ${res.stderr}`);
  return (JSON.parse(res.stdout) as { release: number }).release;
}

const json = async (url: string) => (await fetch(url)).json() as Promise<Record<string, unknown>>;
const metric = async (url: string, name: string) => new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1];

describe.skipIf(!HAVE_ETCD)('hotconf run --etcd in a fleet', () => {
  test('restarted while etcd is down, an instance serves its cached release as stale, then converges', async () => {
    const prefix = '/fleet-cache/';
    const cacheDir = tmp.file('cache');
    await publish(prefix, new Map([['app.yaml', 'port: 1\n'], ['db.json', '{"port": 5432, "password": "s3cret"}']]));
    {
      await using first = await sidecar(prefix, 'web-1', ['--cache-dir', cacheDir]);
      await until(async () => (await json(`${first.url}/v1/status`)).release === 1, 'release 1 served');
      expect(await json(`${first.url}/v1/configs`)).toMatchObject({ release: 1 });
      expect(await json(`${first.url}/v1/status`)).toMatchObject({ release: 1, stale: null, source: { mode: 'release', instanceId: 'web-1', target: 1 } });
      expect(await metric(first.url, 'hotconf_source_release')).toBe('1');
      expect(await metric(first.url, 'hotconf_source_stale')).toBe('0');
      const fleet = await json(`${first.url}/v1/fleet`);
      expect(fleet).toMatchObject({ stable: 1, canary: null, instances: [{ id: 'web-1', release: 1, target: 1, state: 'ok', errors: 0 }] });
      const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
      expect((fleet.instances as Array<{ hotconf: string }>)[0]!.hotconf).toBe(version);
      first.signal('SIGTERM');
      expect(await first.exited).toBe(0);
    }
    // Release 2 lands while the instance is away; then etcd goes down and the instance restarts.
    await publish(prefix, new Map([['app.yaml', 'port: 2\n']]));
    await etcd.kill9();

    // Without a cache: exit 3, as before.
    const nocache = startHotconf(['run', '--etcd', etcd.url, '--etcd-prefix', prefix, '--schema-dir', tmp.file('schemas'), '--instance-id', 'web-2', '--no-pretty']);
    expect(await nocache.exited).toBe(3);

    const notify = await tempDir();
    const statuses: string[] = [];
    const socket: UnixDgramSocket = createSocket('unix_dgram', (buf) => {
      const status = /^STATUS=(.*)$/m.exec(buf.toString())?.[1];
      if (status !== undefined) statuses.push(status);
    });
    socket.bind(notify.file('notify.sock'));
    try {
      await using again = await sidecar(prefix, 'web-1', ['--cache-dir', cacheDir], { NOTIFY_SOCKET: notify.file('notify.sock') });
      expect((await fetch(`${again.url}/readyz`)).status).toBe(200);
      const status = await json(`${again.url}/v1/status`);
      expect(status).toMatchObject({ release: 1, source: { stale: true, connected: false, release: 1 } });
      expect(Date.parse((status.stale as { since: string }).since)).toBeGreaterThan(Date.now() - 60_000);
      expect(await json(`${again.url}/v1/configs/app`)).toEqual({ port: 1 });
      expect(await metric(again.url, 'hotconf_source_stale')).toBe('1');
      await until(() => statuses.some((s) => /^stale: serving cached release 1 since \d{4}-\d\d-\d\dT/.test(s)), 'STATUS= says stale');

      await etcd.restart();
      await until(async () => (await json(`${again.url}/v1/status`)).release === 2, 'converged on release 2', { timeoutMs: 30_000, intervalMs: 200 });
      expect(await json(`${again.url}/v1/status`)).toMatchObject({ stale: null, source: { stale: false } });
      expect(await json(`${again.url}/v1/configs/app`)).toEqual({ port: 2 });
      expect((await fetch(`${again.url}/v1/configs/db`)).status).toBe(404);
      expect(await metric(again.url, 'hotconf_source_stale')).toBe('0');
      await until(() => statuses.at(-1)?.startsWith('release 2, '), 'STATUS= no longer stale');
    } finally {
      socket.close();
      await notify[Symbol.asyncDispose]();
    }
  }, 90_000);

  test('an instance record goes with its process: at once on SIGTERM, within the lease TTL after SIGKILL', async () => {
    const prefix = '/fleet-lease/';
    await publish(prefix, new Map([['app.yaml', 'port: 1\n']]));
    const a = await sidecar(prefix, 'a');
    const b = await sidecar(prefix, 'b');
    try {
      await until(async () => (await instances(client, prefix)).map((r) => r.id).sort().join() === 'a,b', 'both records', { intervalMs: 100 });
      expect((await json(`${a.url}/v1/fleet`)).instances).toHaveLength(2);
      a.signal('SIGTERM');
      expect(await a.exited).toBe(0);
      await until(async () => (await instances(client, prefix)).map((r) => r.id).join() === 'b', 'a gone at once', { timeoutMs: 3000, intervalMs: 100 });
      b.signal('SIGKILL');
      await b.exited;
      // The lease (10 s) expires: the record of a process that could say nothing goes too.
      await until(async () => (await instances(client, prefix)).length === 0, 'b gone with its lease', { timeoutMs: 20_000, intervalMs: 250 });
    } finally {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    }
  }, 60_000);

  test('GET /v1/fleet is 404 for a prefix of plain keys', async () => {
    await client.put('/fleet-plain/app.yaml').value('port: 1\n');
    await using d = await sidecar('/fleet-plain/', 'p');
    const res = await fetch(`${d.url}/v1/fleet`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } });
    expect(await json(`${d.url}/v1/status`)).toMatchObject({ release: null, stale: null, source: { mode: 'plain' } });
  });
});
