// The fleet's writer commands as a user runs them (dist/cli/main.js as a child process) against a real etcd:
// push as releases, history, rollback, diff with secrets redacted, rollout status/promote/abort, a canary with
// --auto --wait (the instance records are written by this test: the real instances are test/e2e's daemons), and
// the errors: over-limit, plain keys, no etcd.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { tempDir, until, type TempDir } from '../helpers.js';
import { fleetKeys, type InstanceRecord } from '../../src/source/etcd/layout.js';
import { readContent, readRelease } from '../../src/source/etcd/releases.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from '../etcd/etcd-server.js';
import { hotconf } from './cli-helpers.js';

const SCHEMA = JSON.stringify({
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: { port: { type: 'integer' }, user: { type: 'string' }, password: { type: 'string', writeOnly: true } },
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
});
afterAll(async () => {
  await etcd?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

const at = (prefix: string) => ['--etcd', etcd.url, '--etcd-prefix', prefix];
const push = (prefix: string, dir: string, ...more: string[]) => hotconf(['push', ...at(prefix), '--config-dir', tmp.file(dir), '--schema-dir', tmp.file('schemas'), ...more]);
const register = (prefix: string, r: Partial<InstanceRecord> & { id: string }) => {
  const now = Date.now();
  const rec: InstanceRecord = { release: 1, target: 1, state: 'ok', errors: 0, appliedAt: now, seenAt: now, startedAt: now, host: 'h', pid: 1, hotconf: 't', ...r };
  return client.put(fleetKeys(prefix).instance(r.id)).value(JSON.stringify(rec));
};

describe.skipIf(!HAVE_ETCD)('hotconf push (releases), history, rollback, diff', () => {
  test('push publishes release N; history lists them; rollback republishes; diff shows text with secrets redacted', async () => {
    await tmp.write('v1/app.yaml', 'port: 80\n');
    await tmp.write('v1/db.yaml', '# the database\nuser: app\npassword: hunter2\nport: 5432\n');
    const r1 = await push('/f1/', 'v1', '-m', 'first');
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(0);
    expect(r1.stdout).toMatch(/^release 1: 2 changed, 0 removed, 0 unchanged; revision \d+$/m);
    expect(r1.stdout).toContain('+ db.yaml');
    // The bytes as validated and as on disk, comments and all.
    const content = await readContent(client, '/f1/', (await readRelease(client, '/f1/', 1))!);
    expect(Object.fromEntries([...content].map(([k, v]) => [k, v.toString()]))).toEqual({ 'app.yaml': 'port: 80\n', 'db.yaml': '# the database\nuser: app\npassword: hunter2\nport: 5432\n' });

    await tmp.write('v2/app.yaml', 'port: 81\n');
    await tmp.write('v2/db.yaml', '# the database\nuser: app2\npassword: s3cret-two\nport: 5432\n');
    const r2 = await push('/f1/', 'v2', '--message', 'second', '--json');
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ release: 2, created: true, parent: 1, changed: ['app.yaml', 'db.yaml'], removed: [], unchanged: 0, canary: null });
    await tmp.write('v2b/app.yaml', 'port: 81\n');
    await tmp.write('v2b/db.yaml', '# the database\nuser: app2\npassword: s3cret-two\nport: 5432\n');
    await tmp.write('v2b/new.yaml', 'port: 1\n');
    await tmp.write('schemas/new.schema.json', SCHEMA);
    const dry = await push('/f1/', 'v2b', '--dry-run');
    expect(dry.stdout).toBe('+ new.yaml\ndry run: release 3 would have 1 changed, 0 removed, 2 unchanged; 1 blob(s) to upload (8 bytes); nothing written\n');
    const again = await push('/f1/', 'v2');
    expect(again.stdout).toContain('release 2: nothing to push, it holds these 2 config(s) already');

    // An invalid directory: file:line:col, exit 1, no release.
    await tmp.write('bad/app.yaml', 'port: "eighty"\n');
    const bad = await push('/f1/', 'bad');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${tmp.file('bad/app.yaml')}:1:7: /port: must be integer`);
    expect(bad.stderr).toContain('nothing was written to etcd');

    const back = await hotconf(['rollback', ...at('/f1/'), '--to', '1']);
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/^release 3: 2 changed, 0 removed, 0 unchanged \(rollback to release 1\); revision \d+$/m);
    const h = await hotconf(['history', ...at('/f1/'), '--json']);
    const list = JSON.parse(h.stdout) as Array<{ release: number; createdAt: string; author: string; message: string; changed: string[]; removed: string[]; state: string }>;
    expect(list.map((r) => [r.release, r.message, r.state])).toEqual([
      [3, 'rollback to release 1', 'stable'],
      [2, 'second', ''],
      [1, 'first', ''],
    ]);
    expect(list[0]!.author).toMatch(/^.+@.+$/);
    expect(Date.parse(list[0]!.createdAt)).toBeGreaterThan(Date.now() - 60_000);
    const limited = await hotconf(['history', ...at('/f1/'), '--limit', '1']);
    expect(limited.stdout.trim().split('\n')).toHaveLength(2); // header + release 3
    expect(limited.stdout).toMatch(/^3 .* stable .* rollback to release 1$/m);

    // diff between releases: the secret is redacted where written, its line still shown in context.
    const d = await hotconf(['diff', ...at('/f1/'), '--schema-dir', tmp.file('schemas'), '--from', '1', '--to', '2']);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('--- release 1/db.yaml\n+++ release 2/db.yaml\n');
    expect(d.stdout).toContain('-user: app\n+user: app2\n password: "[REDACTED]"\n');
    expect(d.stdout).toContain('-port: 80\n+port: 81\n');
    expect(d.stdout).not.toMatch(/hunter2|s3cret-two/);
    expect(d.stdout).toContain('2 config(s) differ between release 1 and release 2');
    // diff against a directory (default --from: the stable release, 3 = 1's content); a secret-only change is named, not shown.
    await tmp.write('v3/app.yaml', 'port: 80\n');
    await tmp.write('v3/db.yaml', '# the database\nuser: app\npassword: changed!\nport: 5432\n');
    await tmp.write('v3/new.yaml', 'port: 1\n');
    const dd = await hotconf(['diff', ...at('/f1/'), '--schema-dir', tmp.file('schemas'), '--config-dir', tmp.file('v3')]);
    expect(dd.stdout).toContain('# db.yaml: only secret values differ (not shown)');
    expect(dd.stdout).toContain('--- /dev/null\n');
    expect(dd.stdout).toContain('+port: 1\n');
    expect(dd.stdout).not.toMatch(/hunter2|changed!/);
    expect(dd.stdout).toMatch(/2 config\(s\) differ between release 3 and .*v3\n$/);
  });

  test('201 configs: --plain is refused by etcd as over its limit (not "unreachable"); a release push takes them', async () => {
    for (let i = 0; i < 201; i++) {
      await tmp.write(`many/c${i}.yaml`, `port: ${i}\n`);
      await tmp.write(`schemas-many/c${i}.schema.json`, SCHEMA);
    }
    const args = (...more: string[]) => ['push', ...at('/many/'), '--config-dir', tmp.file('many'), '--schema-dir', tmp.file('schemas-many'), ...more];
    const plain = await hotconf(args('--plain'));
    expect(plain.code).toBe(3);
    expect(plain.stderr).toContain('refused the request: too many operations in one transaction');
    expect(plain.stderr).not.toContain('unreachable');
    const rel = await hotconf(args());
    expect(rel.stderr).toBe('');
    expect(rel.stdout).toMatch(/^release 1: 201 changed/m);
  });

  test('plain keys: a release push is refused without --adopt, lands with it and --prune deletes them; --plain then refuses', async () => {
    await client.put('/f2/app.yaml').value('port: 1\n');
    await tmp.write('d2/app.yaml', 'port: 2\n');
    const refused = await push('/f2/', 'd2');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('/f2/ holds 1 plain config key(s) (/f2/app.yaml) and no release yet');
    const usage = await push('/f2/', 'd2', '--prune');
    expect(usage.code).toBe(2);
    const adopted = await push('/f2/', 'd2', '--adopt', '--prune');
    expect(adopted.code).toBe(0);
    expect(adopted.stdout).toContain('deleted 1 plain key(s)');
    expect(await client.get('/f2/app.yaml').string()).toBeNull();
    const plain = await push('/f2/', 'd2', '--plain');
    expect(plain.code).toBe(3);
    expect(plain.stderr).toContain('/f2/ is in release mode (release 1 is stable)');
  });

  test('no etcd: exit 3, unreachable', async () => {
    const r = await hotconf(['history', '--etcd', 'http://127.0.0.1:1', '--etcd-prefix', '/x/']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('etcd (http://127.0.0.1:1) is unreachable');
  });
});

describe.skipIf(!HAVE_ETCD)('hotconf push --canary, rollout', () => {
  test('canary 1 of 3, status, abort, then again and promote', async () => {
    await tmp.write('c1/app.yaml', 'port: 1\n');
    await tmp.write('c2/app.yaml', 'port: 2\n');
    expect((await push('/c/', 'c1')).code).toBe(0);
    const none = await push('/c/', 'c2', '--canary', '1');
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('--canary 1: no live instance under /c/');
    for (const id of ['web-1', 'web-2', 'web-3']) await register('/c/', { id });
    const c = await push('/c/', 'c2', '--canary', '1', '--json');
    expect(c.code).toBe(0);
    const pushed = JSON.parse(c.stdout) as { release: number; canary: { ids: string[] } };
    expect(pushed).toMatchObject({ release: 2, canary: { release: 2, auto: null } });
    expect(pushed.canary.ids).toHaveLength(1);
    const [chosen] = pushed.canary.ids;
    const status = JSON.parse((await hotconf(['rollout', 'status', ...at('/c/'), '--json'])).stdout) as { stable: number; canary: { release: number; ids: string[] }; instances: Array<{ id: string }> };
    expect(status).toMatchObject({ stable: 1, canary: { release: 2, ids: [chosen] } });
    expect(status.instances.map((i) => i.id)).toEqual(['web-1', 'web-2', 'web-3']);
    expect((await hotconf(['rollout', 'status', ...at('/c/')])).stdout).toContain(`canary: release 2 on 1 instance(s): ${chosen}`);

    const busy = await push('/c/', 'c1');
    expect(busy.code).toBe(3);
    expect(busy.stderr).toContain('a canary of release 2 is in progress');
    const abort = await hotconf(['rollout', 'abort', ...at('/c/'), '-m', 'latency up']);
    expect(abort.stdout).toContain('release 2 aborted: 1 canary instance(s) return to the stable release');
    const h = await hotconf(['history', ...at('/c/')]);
    expect(h.stdout).toMatch(/^2 .* aborted .*\[aborted: abort: latency up\]$/m);

    const c3 = await push('/c/', 'c2', '--canary', '34%');
    expect(c3.stdout).toMatch(/^release 3: 1 changed/m);
    expect(c3.stdout).toContain('canary: release 3 on 2 instance(s)');
    const promote = await hotconf(['rollout', 'promote', ...at('/c/')]);
    expect(promote.stdout).toContain('release 3 promoted: every instance now runs it');
    expect(JSON.parse((await hotconf(['rollout', 'status', ...at('/c/'), '--json'])).stdout)).toMatchObject({ stable: 3, canary: null });
    expect((await hotconf(['rollout', 'promote', ...at('/c/')])).code).toBe(3);
  });

  test('--auto --wait: exit 4 naming the instance that refused; exit 0 once promoted after the bake', { timeout: 60_000 }, async () => {
    await tmp.write('a1/app.yaml', 'port: 1\n');
    await tmp.write('a2/app.yaml', 'port: 2\n');
    await tmp.write('a3/app.yaml', 'port: 3\n');
    expect((await push('/auto/', 'a1')).code).toBe(0);
    for (const id of ['i-1', 'i-2', 'i-3']) await register('/auto/', { id });
    const aborted = push('/auto/', 'a2', '--canary', '1', '--auto', '--bake', '30', '--wait', '--timeout', '30');
    // The chosen instance sees release 2 and refuses it (its schema is stricter, say).
    const head = await until(async () => {
      const h = await client.get(fleetKeys('/auto/').head).json() as { canary: { release: number; ids: string[] } | null } | null;
      return h?.canary ?? undefined;
    }, 'the canary head');
    await register('/auto/', { id: head.ids[0]!, release: 1, target: 2, state: 'error', errors: 2 });
    const a = await aborted;
    expect(a.code).toBe(4);
    expect(a.stderr).toContain(`hotconf: release 2 aborted: auto-abort: instance ${head.ids[0]} refused release 2 (2 errors)`);

    await register('/auto/', { id: head.ids[0]!, release: 1, target: 1 });
    const promoted = push('/auto/', 'a3', '--canary', '1', '--auto', '--bake', '1', '--wait', '--json');
    const h3 = await until(async () => {
      const h = await client.get(fleetKeys('/auto/').head).json() as { canary: { release: number; ids: string[] } | null } | null;
      return h?.canary?.release === 3 ? h.canary : undefined;
    }, 'the canary head of release 3');
    await register('/auto/', { id: h3.ids[0]!, release: 3, target: 3, appliedAt: Date.now() });
    const p = await promoted;
    expect(p.stderr).toContain('waiting: ');
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({
      release: 3,
      canary: { release: 3, ids: h3.ids },
      rollout: { outcome: 'promoted', why: 'auto-promote: every canary instance (1) ran release 3 healthily for 1 s' },
    });
    // A canary nobody decides: --wait gives up at --timeout with exit 5.
    const stuck = await push('/auto/', 'a1', '--canary', '1', '--wait', '--timeout', '1');
    expect(stuck.code).toBe(5);
    expect(stuck.stderr).toContain('release 4 still in canary');
    // `rollout wait` re-attaches to it; a `rollout promote` from elsewhere ends it: exit 0.
    const waiter = hotconf(['rollout', 'wait', ...at('/auto/'), '--timeout', '30', '--json']);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await hotconf(['rollout', 'promote', ...at('/auto/')])).code).toBe(0);
    const w = await waiter;
    expect(w.code).toBe(0);
    expect(JSON.parse(w.stdout)).toEqual({ release: 4, outcome: 'promoted', why: 'promote release 4' });
    const nothing = await hotconf(['rollout', 'wait', ...at('/auto/')]);
    expect(nothing.code).toBe(3);
    expect(nothing.stderr).toContain('no canary in progress under /auto/: every instance runs release 4');
  });
});
