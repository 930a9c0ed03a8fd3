// The writer side of fleet releases against a real etcd (default limits: 128 operations, 1.5 MiB per request):
// publishRelease (any size, one head switch), history, rollback, GC with its guards, concurrent pushes, plain
// keys, canary promote/abort and the automatic decision, and the errors of a value etcd cannot take.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { describeEtcdError, etcdClient, EtcdError } from '../../src/source/etcd/client.js';
import { decodeHead, fleetKeys, sha256, type InstanceRecord, type ReleaseMeta } from '../../src/source/etcd/layout.js';
import { collectGarbage, entryOf, history, META_MAX_NAMES, publishRelease, readContent, readHead, readRelease, rollback, type ReleaseEntry } from '../../src/source/etcd/releases.js';
import { finishRollout, rolloutStatus, stepRollout, waitRollout } from '../../src/source/etcd/rollout.js';
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

const tree = (files: Record<string, string>) => new Map<string, ReleaseEntry>(Object.entries(files).map(([k, v]) => [k, entryOf(Buffer.from(v))]));
const text = (m: Map<string, Buffer>) => Object.fromEntries([...m].map(([k, v]) => [k, v.toString()]));
const keysUnder = async (p: string) => (await client.getAll().prefix(p).keys()).sort();
const meta = async (prefix: string, n: number) => (await readRelease(client, prefix, n))!;

function instance(id: string, o: Partial<InstanceRecord>): InstanceRecord {
  const now = Date.now();
  return { id, release: 1, target: 1, state: 'ok', errors: 0, appliedAt: now, seenAt: now, startedAt: now, host: 'test', pid: 1, hotconf: 'test', ...o };
}
const register = (prefix: string, r: InstanceRecord) => client.put(fleetKeys(prefix).instance(r.id)).value(JSON.stringify(r));

describe.skipIf(!HAVE_ETCD)('releases', () => {
  test('each push is the next release, made of its changes against the stable one; the same content makes none', async () => {
    const p = '/r1/';
    const r1 = await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n', 'db/primary.yaml': 'host: a\n' }), { author: 'me@here', message: 'first' });
    expect(r1).toMatchObject({ release: 1, plan: { parent: undefined, changed: ['app.yaml', 'db/primary.yaml'], removed: [], unchanged: 0 } });
    expect((await readHead(client, p)).head).toMatchObject({ stable: 1, canary: null, by: 'me@here', reason: 'push' });
    const r2 = await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n', 'features.yaml': 'x: 1\n' }), { author: 'me@here', message: 'second' });
    expect(r2).toMatchObject({ release: 2, plan: { parent: 1, changed: ['app.yaml', 'features.yaml'], removed: ['db/primary.yaml'], unchanged: 0 } });
    expect(await meta(p, 2)).toMatchObject({ release: 2, author: 'me@here', message: 'second', parent: 1, entries: 2, changed: ['app.yaml', 'features.yaml'], removed: ['db/primary.yaml'] });
    expect(text(await readContent(client, p, await meta(p, 2)))).toEqual({ 'app.yaml': 'port: 2\n', 'features.yaml': 'x: 1\n' });
    const same = await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n', 'features.yaml': 'x: 1\n' }), { author: 'me@here' });
    expect(same.release).toBeUndefined();
    expect(same.plan).toMatchObject({ parent: 2, changed: [], removed: [], unchanged: 2 });
    const dry = await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'me@here', dryRun: true });
    expect(dry).toMatchObject({ release: undefined, plan: { release: 3, changed: ['app.yaml'], removed: ['features.yaml'], upload: 1 } });
    expect((await readHead(client, p)).head?.stable).toBe(2);

    // Rollback: release 1's content as release 3, without uploading anything; history is linear and newest first.
    const before = await keysUnder(fleetKeys(p).blobs);
    const back = await rollback(client, p, 1, { author: 'you@there' });
    expect(back).toMatchObject({ release: 3, plan: { parent: 2, upload: 0, changed: ['app.yaml', 'db/primary.yaml'], removed: ['features.yaml'] } });
    expect(await keysUnder(fleetKeys(p).blobs)).toEqual(before);
    expect(text(await readContent(client, p, await meta(p, 3)))).toEqual({ 'app.yaml': 'port: 1\n', 'db/primary.yaml': 'host: a\n' });
    expect((await meta(p, 3)).manifest).toBe((await meta(p, 1)).manifest);
    const h = await history(client, p);
    expect(h.releases.map((r) => [r.release, r.state, r.author, r.message, r.rollbackOf])).toEqual([
      [3, 'stable', 'you@there', 'rollback to release 1', 1],
      [2, '', 'me@here', 'second', undefined],
      [1, '', 'me@here', 'first', undefined],
    ]);
    expect((await history(client, p, 1)).releases.map((r) => r.release)).toEqual([3]);
    const missing = await rollback(client, p, 9, { author: 'x' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(EtcdError);
    expect((missing as Error).message).toBe('release 9 is not in etcd under /r1/ (kept: 1…3; see `hotconf history`)');
  });

  test('2,000 configs and 20 MB land as one release: the head moves once, every blob and manifest part is there', { timeout: 120_000 }, async () => {
    const p = '/big/';
    const files = new Map<string, ReleaseEntry>();
    for (let i = 0; i < 2000; i++) {
      // 10,000 bytes each, all different: 20 MB of blobs, far past one transaction (128 ops / 1.5 MiB).
      const body = `id: ${i}\npad: "${String(i).padStart(6, '0').repeat(1664)}"\n`.padEnd(10_000, '#');
      files.set(`svc-${i % 40}/cfg-${i}.yaml`, entryOf(Buffer.from(body)));
    }
    const total = [...files.values()].reduce((n, e) => n + e.size, 0);
    expect(total).toBeGreaterThanOrEqual(20_000_000);
    const k = fleetKeys(p);
    const headEvents: string[] = [];
    const watcher = await client.watch().key(k.head).create();
    watcher.on('put', (kv) => headEvents.push(kv.mod_revision));
    try {
      const res = await publishRelease(client, p, files, { author: 'ci@build' });
      expect(res.release).toBe(1);
      const { kvs } = await client.kv.range({ key: Buffer.from(k.head) });
      expect(kvs[0]!.version).toBe('1');
      expect(kvs[0]!.mod_revision).toBe(res.revision);
      // The meta was created by the same transaction as the head.
      expect((await client.kv.range({ key: Buffer.from(k.release(1)) })).kvs[0]!.create_revision).toBe(res.revision);
      const m = await meta(p, 1);
      expect(m).toMatchObject({ entries: 2000, bytes: total });
      expect(m.manifestParts).toBeGreaterThan(0);
      // Every blob is there under its sha, with the bytes pushed; every one was written before the switch.
      const blobs = await client.kv.range({ key: Buffer.from(k.blobs), range_end: Buffer.from(k.blobs.slice(0, -1) + '0'), keys_only: true });
      expect(blobs.kvs).toHaveLength(2000);
      for (const kv of blobs.kvs) expect(BigInt(kv.mod_revision)).toBeLessThan(BigInt(res.revision!));
      // ... and holds the bytes pushed (read one by one: 20 MB is past a client's default 4 MiB response).
      const content = await readContent(client, p, m);
      expect(content.size).toBe(2000);
      for (const [key, e] of files) expect(sha256(content.get(key)!)).toBe(e.sha);
      await new Promise((r) => setTimeout(r, 200));
      expect(headEvents).toEqual([res.revision]);
    } finally {
      await watcher.cancel();
    }
  });

  test('a meta lists at most META_MAX_NAMES changed names and says how many there were', async () => {
    const p = '/names/';
    const n = META_MAX_NAMES + 5;
    const res = await publishRelease(client, p, tree(Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}.yaml`, `i: ${i}\n`]))), { author: 'a' });
    expect(res.plan.changed).toHaveLength(n);
    const m = await meta(p, 1);
    expect(m.changed).toHaveLength(META_MAX_NAMES);
    expect(m.changedCount).toBe(n);
    expect(m.removedCount).toBeUndefined();
    expect((await history(client, p)).releases[0]).toMatchObject({ changedCount: n, removedCount: 0 });
  });

  test('GC keeps the last --keep releases (and stable and canary) and removes content only they used', async () => {
    const p = '/gc/';
    const k = fleetKeys(p);
    for (let i = 1; i <= 5; i++) await publishRelease(client, p, tree({ 'shared.yaml': 'a: 1\n', 'app.yaml': `port: ${i}\n` }), { author: 'a', keep: 2 });
    expect((await keysUnder(k.releases)).map((key) => key.slice(k.releases.length))).toEqual(['0000000004', '0000000005']);
    const blobs = (await keysUnder(k.blobs)).map((key) => key.slice(k.blobs.length)).sort();
    expect(blobs).toEqual([sha256('a: 1\n'), sha256('port: 4\n'), sha256('port: 5\n')].sort());
    const manifests = new Set((await keysUnder(k.manifests)).map((key) => key.slice(k.manifests.length).split('/')[0]));
    expect(manifests).toEqual(new Set([(await meta(p, 4)).manifest, (await meta(p, 5)).manifest]));
    // With a canary in progress, --keep 1 keeps the stable release and the canary's.
    await publishRelease(client, p, tree({ 'shared.yaml': 'a: 1\n', 'app.yaml': 'port: 6\n' }), { author: 'a', keep: 1, canary: { ids: ['x'] } });
    expect((await keysUnder(k.releases)).map((key) => key.slice(k.releases.length))).toEqual(['0000000005', '0000000006']);
    await finishRollout(client, p, 'abort', { by: 'a' });
    await publishRelease(client, p, tree({ 'shared.yaml': 'a: 1\n', 'app.yaml': 'port: 7\n' }), { author: 'a', keep: 1 });
    expect((await keysUnder(k.releases)).map((key) => key.slice(k.releases.length))).toEqual(['0000000007']);
    expect((await keysUnder(k.blobs)).map((key) => key.slice(k.blobs.length)).sort()).toEqual([sha256('a: 1\n'), sha256('port: 7\n')].sort());
    // A rollback to a release GC removed is refused clearly.
    expect(((await rollback(client, p, 2, { author: 'a' }).catch((e: unknown) => e)) as Error).message).toContain('release 2 is not in etcd under /gc/ (kept: 7;');
  });

  test('a push that reuses content GC deletes meanwhile does not land naming it: the gc key fails its switch, it uploads again', async () => {
    const p = '/gc2/';
    const k = fleetKeys(p);
    await publishRelease(client, p, tree({ 'app.yaml': 'old: 1\n' }), { author: 'a', keep: 1 });
    await publishRelease(client, p, tree({ 'app.yaml': 'new: 1\n' }), { author: 'a', keep: 1 });
    // 'old: 1\n' is gone (GC of the second push). Put an orphan back by hand, as a crashed push would leave it.
    const orphan = await client.put(k.blob(sha256('orphan: 1\n'))).value('orphan: 1\n');
    let planned = 0;
    const res = await publishRelease(client, p, tree({ 'app.yaml': 'orphan: 1\n' }), {
      author: 'b',
      beforeSwitch: async (plan) => {
        if (planned++ > 0) return;
        expect(plan.upload).toBe(0); // the orphan is reused
        // Another pusher's GC (same head) deletes it now.
        const { headMod } = await readHead(client, p);
        // (one whose push started after the orphan was written: it is old enough to go)
        const gc = await collectGarbage(client, p, { keep: 1, headMod, olderThan: orphan.header.revision });
        expect(gc.blobs).toBe(1);
      },
    });
    expect(res.attempts).toBe(2);
    expect(res.plan.upload).toBe(1);
    expect(text(await readContent(client, p, await meta(p, res.release!)))).toEqual({ 'app.yaml': 'orphan: 1\n' });
  });

  test('concurrent pushes land as consecutive releases, each exactly its own tree, or fail without a release', async () => {
    const p = '/conc/';
    await publishRelease(client, p, tree({ 'base.yaml': 'b: 0\n' }), { author: 'a' });
    const trees = Array.from({ length: 6 }, (_, i) => tree({ 'app.yaml': `port: ${i}\n`, [`only-${i}.yaml`]: `n: ${i}\n` }));
    let conflicts = 0;
    const results = await Promise.allSettled(trees.map((t) => publishRelease(client, p, t, { author: 'a', maxAttempts: 10, onConflict: () => void conflicts++ })));
    expect(conflicts).toBeGreaterThan(0);
    const landed = results.flatMap((r, i) => (r.status === 'fulfilled' ? [[r.value.release!, i] as const] : []));
    for (const r of results) if (r.status === 'rejected') expect((r.reason as EtcdError).code).toBe('E_PUSH_CONFLICT');
    expect(landed.map(([n]) => n).sort((a, b) => a - b)).toEqual(Array.from({ length: landed.length }, (_, i) => i + 2));
    for (const [n, i] of landed) {
      const m = await meta(p, n);
      expect(text(await readContent(client, p, m))).toEqual(Object.fromEntries([...trees[i]!].map(([key, e]) => [key, Buffer.from(e.bytes!).toString()])));
      expect(m.parent).toBe(n - 1);
    }
  });

  test('a prefix with plain config keys is not taken over without --adopt; with it (and prune) it is', async () => {
    const p = '/plain/';
    await client.put(`${p}app.yaml`).value('port: 1\n');
    await client.put(`${p}db.yaml`).value('port: 2\n');
    const refused = await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'a' }).catch((e: unknown) => e);
    expect((refused as EtcdError).code).toBe('E_FLEET');
    expect((refused as Error).message).toContain('/plain/ holds 2 plain config key(s) (/plain/app.yaml, /plain/db.yaml) and no release yet');
    expect((refused as Error).message).toContain('--adopt');
    expect(await keysUnder(p)).toEqual(['/plain/app.yaml', '/plain/db.yaml']);
    const res = await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'a', adopt: true, prunePlain: true });
    expect(res).toMatchObject({ release: 1, prunedPlain: 2 });
    expect((await keysUnder(p)).filter((key) => !key.startsWith(fleetKeys(p).root))).toEqual([]);
  });

  test('a member with limits below the defaults: the content goes in smaller transactions; a value over its limit is named', { timeout: 60_000 }, async () => {
    await using small = await startEtcd({ args: ['--max-request-bytes', String(256 * 1024), '--max-txn-ops', '16'] });
    // hotconf's own client (its breaker counts only network faults), as `hotconf push` makes it
    const c = await etcdClient({ endpoints: [small.url], prefix: '/small/' });
    const files = tree(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`c${i}.yaml`, `i: ${i}\npad: ${'x'.repeat(20_000)}\n`])));
    const res = await publishRelease(c, '/small/', files, { author: 'a' });
    expect(res.release).toBe(1);
    expect((await readContent(c, '/small/', (await readRelease(c, '/small/', 1))!)).size).toBe(100);
    const big = Buffer.alloc(300 * 1024, 'b');
    const e = await publishRelease(c, '/small/', new Map([['big.yaml', entryOf(big)]]), { author: 'a' }).catch((x: unknown) => x);
    expect((e as EtcdError).code).toBe('E_SOURCE_LIMIT');
    expect((e as Error).message).toContain(`etcd refused big.yaml (${fleetKeys('/small/').blob(sha256(big))}): 307200 bytes is over its request limit`);
    c.close();
  });

  test('a value larger than etcd takes is named with its size and the limit, not called unreachable', async () => {
    const p = '/huge/';
    const big = Buffer.alloc(2 * 1024 * 1024, 'a');
    const own = etcd.client(); // its breaker opens on the refusal: not the shared client's
    const e = await publishRelease(own, p, new Map([['big.yaml', entryOf(big)]]), { author: 'a' }).catch((x: unknown) => x);
    expect((e as EtcdError).code).toBe('E_SOURCE_LIMIT');
    expect((e as Error).message).toBe(
      `etcd refused big.yaml (${fleetKeys(p).blob(sha256(big))}): 2097152 bytes is over its request limit (--max-request-bytes, default 1.5 MiB = 1572864 bytes); keep each config under it (maxFileBytes) or raise the limit on every etcd member`,
    );
    expect((await readHead(client, p)).head).toBeUndefined();
    own.close();
  });
});

describe.skipIf(!HAVE_ETCD)('rollout', () => {
  test('canary: the release goes to the chosen ids only; abort marks it and returns them; promote makes it stable', async () => {
    const p = '/can/';
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n' }), { author: 'a' });
    const c = await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n' }), { author: 'a', canary: { ids: ['b'] } });
    expect(c.release).toBe(2);
    expect((await readHead(client, p)).head).toMatchObject({ stable: 1, canary: { release: 2, ids: ['b'] } });
    // Another push during a canary is refused.
    const busy = await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'a' }).catch((e: unknown) => e);
    expect((busy as Error).message).toContain('a canary of release 2 is in progress on b');
    for (const id of ['a', 'b', 'c']) await register(p, instance(id, { release: id === 'b' ? 2 : 1, target: id === 'b' ? 2 : 1 }));
    expect(await rolloutStatus(client, p)).toMatchObject({ stable: 1, canary: { release: 2, ids: ['b'] }, instances: [{ id: 'a', release: 1 }, { id: 'b', release: 2 }, { id: 'c', release: 1 }] });

    expect(await finishRollout(client, p, 'abort', { by: 'ops@x' })).toMatchObject({ release: 2 });
    expect((await readHead(client, p)).head).toMatchObject({ stable: 1, canary: null, reason: 'abort release 2', by: 'ops@x' });
    expect((await meta(p, 2)).aborted).toMatchObject({ by: 'ops@x', why: 'abort release 2' });
    expect((await history(client, p)).releases.map((r) => [r.release, r.state])).toEqual([[2, 'aborted'], [1, 'stable']]);
    expect(((await finishRollout(client, p, 'promote', { by: 'x' }).catch((e: unknown) => e)) as Error).message).toContain('no canary in progress under /can/');

    // The next push's parent is the stable release (1), not the aborted one.
    const again = await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'a', canary: { ids: ['a', 'c'] } });
    expect(again).toMatchObject({ release: 3, plan: { parent: 1 } });
    await finishRollout(client, p, 'promote', { by: 'ops@x' });
    expect((await readHead(client, p)).head).toMatchObject({ stable: 3, canary: null, reason: 'promote release 3' });

    // A rollback during a canary ends it: the canary's release is marked aborted.
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 4\n' }), { author: 'a', canary: { ids: ['a'] } });
    expect(await rollback(client, p, 1, { author: 'ops@x' })).toMatchObject({ release: 5, head: { stable: 5, canary: null } });
    expect((await meta(p, 4)).aborted).toMatchObject({ by: 'ops@x', why: 'rollback to release 1' });
  });

  test('--auto: the waiter aborts when a canary instance refuses the release, naming it and its errors', async () => {
    const p = '/auto1/';
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n' }), { author: 'a' });
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n' }), { author: 'a', canary: { ids: ['b'], auto: { bakeMs: 60_000 } } });
    await register(p, instance('b', { release: 1, target: 2 }));
    const waiting: string[] = [];
    const wait = waitRollout(client, p, 2, { by: 'ci@x', timeoutMs: 20_000, intervalMs: 50, onWait: (w) => waiting.push(w) });
    await new Promise((r) => setTimeout(r, 300));
    await register(p, instance('b', { release: 1, target: 2, state: 'error', errors: 3 }));
    const end = await wait;
    expect(end).toMatchObject({ outcome: 'aborted', byUs: true, why: 'auto-abort: instance b refused release 2 (3 errors)' });
    expect(waiting[0]).toBe('b on release 1');
    const head = decodeHead('head', (await client.get(fleetKeys(p).head).buffer())!);
    expect(head).toMatchObject({ stable: 1, canary: null, by: 'ci@x', reason: 'auto-abort: instance b refused release 2 (3 errors)' });
    expect((await meta(p, 2)).aborted?.why).toBe('auto-abort: instance b refused release 2 (3 errors)');
  });

  test('--auto: the waiter promotes once every canary instance ran the release for the bake time; a waiter that comes late sees the outcome', async () => {
    const p = '/auto2/';
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n' }), { author: 'a' });
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n' }), { author: 'a', canary: { ids: ['a', 'b'], auto: { bakeMs: 600 } } });
    await register(p, instance('a', { release: 2, target: 2, appliedAt: Date.now() }));
    const started = Date.now();
    const wait = waitRollout(client, p, 2, { by: 'ci@x', timeoutMs: 20_000, intervalMs: 50 });
    await new Promise((r) => setTimeout(r, 300));
    const bAt = Date.now();
    await register(p, instance('b', { release: 2, target: 2, appliedAt: bAt }));
    const end = await wait;
    expect(end).toMatchObject({ outcome: 'promoted', byUs: true });
    expect(end.why).toBe('auto-promote: every canary instance (2) ran release 2 healthily for 0.6 s');
    expect(Date.now() - bAt).toBeGreaterThanOrEqual(600);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect((await readHead(client, p)).head).toMatchObject({ stable: 2, canary: null });
    // Someone who waits now (the instance decided first, say) is told it was promoted, without moving anything.
    expect(await waitRollout(client, p, 2, { by: 'late', timeoutMs: 1000 })).toMatchObject({ outcome: 'promoted', byUs: false });
    // A canary that is not automatic only times out.
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 3\n' }), { author: 'a', canary: { ids: ['a'] } });
    expect(await waitRollout(client, p, 3, { by: 'x', timeoutMs: 300, intervalMs: 50 })).toMatchObject({ outcome: 'timeout' });
    const m: ReleaseMeta = await meta(p, 3);
    expect(m.aborted).toBeUndefined();
  });

  test('a waiter that finds its canary ended by a decider that wrote only the head reports the abort and records it', async () => {
    const p = '/headonly/';
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n' }), { author: 'a' });
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n' }), { author: 'a', canary: { ids: ['b'], auto: { bakeMs: 60_000 } } });
    const { head, headMod } = await readHead(client, p);
    const next = { ...head!, canary: null, updatedAt: Date.now(), by: 'instance b', reason: 'auto-abort: instance b refused release 2 (1 error)' };
    const moved = await client.kv.txn({
      compare: [{ key: Buffer.from(fleetKeys(p).head), target: 'Mod', result: 'Equal', mod_revision: headMod }],
      success: [{ request_put: { key: Buffer.from(fleetKeys(p).head), value: Buffer.from(JSON.stringify(next)) } }],
      failure: [],
    });
    expect(moved.succeeded).toBe(true);
    expect(await waitRollout(client, p, 2, { by: 'pusher', timeoutMs: 1000 })).toMatchObject({ outcome: 'aborted', byUs: false, why: 'auto-abort: instance b refused release 2 (1 error)' });
    expect((await meta(p, 2)).aborted).toMatchObject({ by: 'instance b', why: 'auto-abort: instance b refused release 2 (1 error)' });
    expect((await history(client, p)).releases[0]).toMatchObject({ release: 2, state: 'aborted' });
  });

  test('deciders racing (the pusher, every canary instance): exactly one moves the head; a step for another release does nothing', async () => {
    const p = '/race/';
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 1\n' }), { author: 'a' });
    await publishRelease(client, p, tree({ 'app.yaml': 'port: 2\n' }), { author: 'a', canary: { ids: ['a', 'b', 'c'], auto: { bakeMs: 1000 } } });
    for (const id of ['a', 'b', 'c']) await register(p, instance(id, { release: 1, target: 2, state: id === 'b' ? 'error' : 'ok', errors: id === 'b' ? 1 : 0 }));
    expect(await stepRollout(client, p, 'x', { release: 7 })).toMatchObject({ acted: false, decision: { action: 'none' } });
    const steps = await Promise.all(['a', 'b', 'c', 'pusher', 'a'].map((by) => stepRollout(client, p, by, { release: 2 })));
    expect(steps.filter((s) => s.acted)).toHaveLength(1);
    for (const s of steps) expect(s.decision).toEqual({ action: 'abort', why: 'instance b refused release 2 (1 error)' });
    expect((await readHead(client, p)).head).toMatchObject({ stable: 1, canary: null, reason: 'auto-abort: instance b refused release 2 (1 error)' });
    expect(await stepRollout(client, p, 'late')).toMatchObject({ acted: false, decision: { action: 'none' } });
  });
});

test("etcd's size limits are E_SOURCE_LIMIT with the limit and the way out, never 'unreachable'", () => {
  const e = (msg: string) => describeEtcdError(new Error(msg), ['http://e:2379']);
  const ops = e('3 INVALID_ARGUMENT: etcdserver: too many operations in txn request');
  expect(ops.code).toBe('E_SOURCE_LIMIT');
  expect(ops.message).toBe(
    "etcd (http://e:2379) refused the request: too many operations in one transaction (over etcd's --max-txn-ops, default 128); a release push (the default, not --plain) splits any directory into small transactions",
  );
  for (const msg of ['3 INVALID_ARGUMENT: etcdserver: request is too large', '8 RESOURCE_EXHAUSTED: grpc: received message larger than max (20143849 vs. 2097152)']) {
    expect(e(msg).code).toBe('E_SOURCE_LIMIT');
    expect(e(msg).message).toContain('refused the request: it is larger than etcd accepts (--max-request-bytes, default 1.5 MiB)');
  }
  expect(e('8 RESOURCE_EXHAUSTED: Received message larger than max (300000000 vs 268435456)').message).toContain('a response is larger than this client accepts');
  expect(e('14 UNAVAILABLE: No connection established').code).toBe('E_SOURCE_UNAVAILABLE');
});
