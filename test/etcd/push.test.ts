// pushEntries, the guarded writer behind `hotconf push`: one transaction per push, guarded by the mod_revision
// of every key it read, so that concurrent pushes serialize instead of interleaving.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { PushConflictError, pushEntries } from '../../src/source/etcd/push.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from './etcd-server.js';

let etcd: EtcdServer;
let client: Etcd3;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
});
afterAll(async () => {
  await etcd?.stop();
});

const bytes = (s: string) => Buffer.from(s);
async function contents(prefix: string, revision?: string): Promise<Record<string, string>> {
  const q = client.getAll().prefix(prefix);
  if (revision !== undefined) q.revision(revision);
  return q.strings();
}

describe.skipIf(!HAVE_ETCD)('push', () => {
  test('writes every changed key in one revision, leaves equal keys alone, prunes only when asked', async () => {
    await client.put('/p1/same.yaml').value('a: 1\n');
    await client.put('/p1/old.yaml').value('b: 1\n');
    const desired = new Map([
      ['/p1/same.yaml', bytes('a: 1\n')],
      ['/p1/x.yaml', bytes('x: 1\n')],
      ['/p1/y/z.json', bytes('{"z": 1}')],
    ]);
    const dry = await pushEntries(client, '/p1/', desired, { prune: true, dryRun: true });
    expect(dry.revision).toBeUndefined();
    expect([...dry.plan.put.keys()]).toEqual(['/p1/x.yaml', '/p1/y/z.json']);
    expect(dry.plan).toMatchObject({ remove: ['/p1/old.yaml'], unchanged: ['/p1/same.yaml'] });
    expect(await contents('/p1/')).toEqual({ '/p1/same.yaml': 'a: 1\n', '/p1/old.yaml': 'b: 1\n' });

    const res = await pushEntries(client, '/p1/', desired);
    const kvs = (await client.getAll().prefix('/p1/').exec()).kvs;
    expect(kvs.filter((kv) => ['/p1/x.yaml', '/p1/y/z.json'].includes(kv.key.toString())).map((kv) => kv.mod_revision)).toEqual([res.revision, res.revision]);
    expect(await contents('/p1/')).toHaveProperty(['/p1/old.yaml']);

    const pruned = await pushEntries(client, '/p1/', desired, { prune: true });
    expect(pruned.plan.remove).toEqual(['/p1/old.yaml']);
    expect(Object.keys(await contents('/p1/')).sort()).toEqual(['/p1/same.yaml', '/p1/x.yaml', '/p1/y/z.json']);
    expect((await pushEntries(client, '/p1/', desired, { prune: true })).revision).toBeUndefined();
  });

  test('concurrent pushes never interleave: each lands whole at its own revision or fails without writing', async () => {
    // Eight pushers of eight different directories, all reading before any writes: the guard must make
    // them take turns, and every revision they produce must hold exactly one directory.
    const dirs = Array.from({ length: 8 }, (_, i) => new Map([
      [`/p2/app.yaml`, bytes(`port: ${i}\n`)],
      [`/p2/db.yaml`, bytes(`port: ${100 + i}\n`)],
      [`/p2/only-${i}.yaml`, bytes(`n: ${i}\n`)],
    ]));
    let conflicts = 0;
    const results = await Promise.allSettled(
      dirs.map((d) => pushEntries(client, '/p2/', d, { prune: true, maxAttempts: 10, onConflict: () => void conflicts++ })),
    );
    expect(conflicts).toBeGreaterThan(0); // the guard was exercised, not bypassed
    for (const [i, r] of results.entries()) {
      if (r.status === 'rejected') {
        expect(r.reason).toBeInstanceOf(PushConflictError);
        continue;
      }
      // The prefix at that revision is exactly directory i.
      const at = await contents('/p2/', r.value.revision);
      expect(at).toEqual(Object.fromEntries([...dirs[i]!].map(([k, v]) => [k, v.toString()])));
    }
    const revisions = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.revision] : []));
    expect(new Set(revisions).size).toBe(revisions.length);
  });

  test('a push that keeps losing fails clearly and writes nothing', async () => {
    await client.put('/p3/app.yaml').value('port: 1\n');
    let n = 0;
    const err = await pushEntries(client, '/p3/', new Map([['/p3/app.yaml', bytes('port: 2\n')]]), {
      maxAttempts: 2,
      // A rival writer lands between every read and transaction of this push.
      beforeCommit: async () => void (await client.put('/p3/app.yaml').value(`port: ${100 + n++}\n`)),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PushConflictError);
    expect((err as PushConflictError).message).toBe('etcd: the keys under /p3/ kept changing during the push (2 attempts); nothing was written by this push');
    expect(await contents('/p3/')).toEqual({ '/p3/app.yaml': 'port: 101\n' });
  });

  test("the fleet's own keys (P.hotconf/: instance records beating every few seconds) are neither guarded nor pruned", async () => {
    await client.put('/p4/.hotconf/instances/web-1').value('{"id":"web-1"}');
    await client.put('/p4/old.yaml').value('a: 1\n');
    let beats = 0;
    const res = await pushEntries(client, '/p4/', new Map([['/p4/app.yaml', bytes('port: 1\n')]]), {
      prune: true,
      maxAttempts: 1,
      // An instance's heartbeat lands between the read and the transaction: no conflict for a config push.
      beforeCommit: async () => void (await client.put('/p4/.hotconf/instances/web-1').value(`{"id":"web-1","beat":${++beats}}`)),
    });
    expect(res.attempts).toBe(1);
    expect(res.plan.remove).toEqual(['/p4/old.yaml']);
    expect(await contents('/p4/')).toEqual({ '/p4/app.yaml': 'port: 1\n', '/p4/.hotconf/instances/web-1': '{"id":"web-1","beat":1}' });
  });
});
