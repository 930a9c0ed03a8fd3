// A minimal release writer for the instance-side tests, built on the shared layout (src/source/etcd/layout.ts)
// as the spec describes it: blobs and manifest parts first (≤ 64 operations per transaction), then the head's
// compare-and-swap with the release's meta created in the same transaction. `hotconf push` (the writer side) is
// tested on its own; these tests check what an instance does with what lands in etcd.
import type { Etcd3 } from 'etcd3';
import {
  decodeHead,
  encodeManifest,
  fleetKeys,
  LAYOUT_FORMAT,
  releaseOfKey,
  sha256,
  type CanaryState,
  type Head,
  type InstanceRecord,
  type ManifestEntry,
  type ReleaseMeta,
} from '../../src/source/etcd/layout.js';

export async function readHead(client: Etcd3, prefix: string): Promise<{ head: Head | undefined; modRevision: string | undefined }> {
  const res = await client.get(fleetKeys(prefix).head).exec();
  const kv = res.kvs[0];
  return { head: kv ? decodeHead(fleetKeys(prefix).head, kv.value) : undefined, modRevision: kv?.mod_revision };
}

export interface Publish {
  /** Canary: the release goes to these ids only (head.stable unchanged). */
  canary?: { ids: string[]; auto?: { bakeMs: number } };
}

/** Publishes `files` (relative key → text) as the next release; returns its number and the revision of the switch. */
export async function publish(client: Etcd3, prefix: string, files: ReadonlyMap<string, string | Uint8Array>, options: Publish = {}): Promise<{ release: number; revision: string }> {
  const k = fleetKeys(prefix);
  const entries = new Map<string, ManifestEntry>();
  const blobs = new Map<string, Uint8Array>();
  for (const [key, text] of files) {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    const sha = sha256(bytes);
    entries.set(key, { sha, size: bytes.byteLength });
    blobs.set(sha, bytes);
  }
  const puts: Array<[string, Uint8Array]> = [...blobs].map(([sha, b]) => [k.blob(sha), b]);
  const manifest = encodeManifest(entries);
  manifest.parts.forEach((p, i) => puts.push([k.manifestPart(manifest.sha, i), Buffer.from(p)]));
  // ≤ 64 operations and ~1 MiB per transaction.
  let batch: Array<[string, Uint8Array]> = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await client.kv.txn({ compare: [], success: batch.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })), failure: [] });
    batch = [];
    bytes = 0;
  };
  for (const p of puts) {
    if (batch.length >= 64 || bytes + p[1].byteLength > 1024 * 1024) await flush();
    batch.push(p);
    bytes += p[1].byteLength;
  }
  await flush();

  const { head, modRevision } = await readHead(client, prefix);
  // The next number after every release there is (an aborted canary's number is not reused).
  const numbers = (await client.getAll().prefix(k.releases).keys()).map((key) => releaseOfKey(prefix, key) ?? 0);
  const n = Math.max(0, ...numbers) + 1;
  const meta: ReleaseMeta = {
    release: n,
    createdAt: Date.now(),
    author: 'test@host',
    message: `release ${n}`,
    manifest: manifest.sha,
    manifestParts: manifest.parts.length,
    entries: entries.size,
    bytes: [...files.values()].reduce((a, t) => a + Buffer.byteLength(t), 0),
    changed: [...entries.keys()],
    removed: [],
    ...(head ? { parent: head.stable } : {}),
  };
  const canary: CanaryState | null = options.canary ? { release: n, ids: options.canary.ids, ...(options.canary.auto ? { auto: options.canary.auto } : {}), startedAt: Date.now() } : null;
  const next: Head = { format: LAYOUT_FORMAT, stable: canary && head ? head.stable : n, canary, updatedAt: Date.now(), by: 'test', reason: 'push' };
  return { release: n, revision: await casHead(client, prefix, modRevision, next, meta) };
}

/** Moves the head (guarded by its mod_revision as read), with a release meta created in the same transaction. */
export async function casHead(client: Etcd3, prefix: string, modRevision: string | undefined, next: Head, meta?: ReleaseMeta): Promise<string> {
  const k = fleetKeys(prefix);
  const res = await client.kv.txn({
    compare: [
      modRevision === undefined
        ? { key: Buffer.from(k.head), target: 'Create', result: 'Equal', create_revision: '0' }
        : { key: Buffer.from(k.head), target: 'Mod', result: 'Equal', mod_revision: modRevision },
      ...(meta ? [{ key: Buffer.from(k.release(meta.release)), target: 'Create' as const, result: 'Equal' as const, create_revision: '0' }] : []),
    ],
    success: [
      { request_put: { key: Buffer.from(k.head), value: Buffer.from(JSON.stringify(next)) } },
      ...(meta ? [{ request_put: { key: Buffer.from(k.release(meta.release)), value: Buffer.from(JSON.stringify(meta)) } }] : []),
    ],
    failure: [],
  });
  if (!res.succeeded) throw new Error('the head moved under the test writer');
  return res.header.revision;
}

/** promote / abort as `hotconf rollout` does it. */
export async function endCanary(client: Etcd3, prefix: string, action: 'promote' | 'abort'): Promise<string> {
  const { head, modRevision } = await readHead(client, prefix);
  if (!head?.canary) throw new Error('no canary');
  return casHead(client, prefix, modRevision, { ...head, stable: action === 'promote' ? head.canary.release : head.stable, canary: null, updatedAt: Date.now(), by: 'test', reason: action });
}

export async function instances(client: Etcd3, prefix: string): Promise<InstanceRecord[]> {
  const kvs = await client.getAll().prefix(fleetKeys(prefix).instances).strings();
  return Object.values(kvs).map((v) => JSON.parse(v) as InstanceRecord);
}
