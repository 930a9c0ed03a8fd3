// The writer side of fleet releases (issue 15): `hotconf push` publishes a config tree as release N, `hotconf
// rollback` republishes an old release's content, `hotconf history` lists them, and the garbage collector removes
// content no kept release names. The key layout is layout.ts's; this module only writes it.
//
// A push: blobs and the manifest are written first, in as many small transactions as they need (invisible until a
// release names them); then ONE transaction creates releases/<N> and moves the head, guarded by the head's
// mod_revision as read (a concurrent push either lands before, and this one re-plans as N+1, or after), by the
// absence of releases/<N>, and by the gc key (content this push reuses was not deleted meanwhile).
import type { Etcd3, ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { configNameOf } from '../../names.js';
import { EtcdError, prefixEnd } from './client.js';
import {
  decodeHead,
  decodeJson,
  encodeManifest,
  fleetKeys,
  LAYOUT_FORMAT,
  releaseOfKey,
  sha256,
  type Head,
  type ManifestEntry,
  type ManifestPart,
  type ReleaseMeta,
} from './layout.js';

/** Most operations in one of our transactions (etcd's default --max-txn-ops is 128). */
export const TXN_MAX_OPS = 64;
/** Most value bytes in one of our transactions (etcd's default --max-request-bytes is 1.5 MiB). */
export const TXN_MAX_BYTES = 1024 * 1024;
/** Releases kept by default (`--keep`). */
export const DEFAULT_KEEP = 50;

/** A config of a release: its blob's sha and size, and its bytes when this push has them. */
export interface ReleaseEntry extends ManifestEntry {
  readonly bytes?: Uint8Array;
}

export const entryOf = (bytes: Uint8Array): ReleaseEntry => ({ sha: sha256(bytes), size: bytes.byteLength, bytes });

/** The fleet's state as read: the head (undefined in plain mode) and the revisions that guard a write. */
export interface FleetHead {
  readonly head: Head | undefined;
  /** mod_revision of the head, '0' when there is none. */
  readonly headMod: string;
  readonly revision: string;
}

const buf = (s: string) => Buffer.from(s);

/** Every key (or only keys) under `prefix`, at `revision` if given. */
export async function rangeOf(client: Etcd3, prefix: string, options: { keysOnly?: boolean; revision?: string } = {}): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const res = await client.kv.range({
    key: buf(prefix),
    range_end: prefixEnd(prefix),
    ...(options.keysOnly ? { keys_only: true } : {}),
    ...(options.revision === undefined ? {} : { revision: options.revision }),
  });
  return { kvs: res.kvs, revision: res.header.revision };
}

async function getKv(client: Etcd3, key: string, revision?: string): Promise<{ kv: IKeyValue | undefined; revision: string }> {
  const res = await client.kv.range({ key: buf(key), ...(revision === undefined ? {} : { revision }) });
  return { kv: res.kvs[0], revision: res.header.revision };
}

export async function readHead(client: Etcd3, prefix: string): Promise<FleetHead> {
  const k = fleetKeys(prefix);
  const { kv, revision } = await getKv(client, k.head);
  return { head: kv ? decodeHead(k.head, kv.value) : undefined, headMod: kv?.mod_revision ?? '0', revision };
}

/** Release N's meta, or undefined when it is not (or no longer) kept. */
export async function readRelease(client: Etcd3, prefix: string, n: number, revision?: string): Promise<ReleaseMeta | undefined> {
  const key = fleetKeys(prefix).release(n);
  const { kv } = await getKv(client, key, revision);
  return kv ? decodeJson<ReleaseMeta>(key, kv.value) : undefined;
}

/** Every kept release's meta, oldest first. */
export async function listReleases(client: Etcd3, prefix: string, revision?: string): Promise<ReleaseMeta[]> {
  const { kvs } = await rangeOf(client, fleetKeys(prefix).releases, revision === undefined ? {} : { revision });
  return kvs
    .filter((kv) => releaseOfKey(prefix, kv.key.toString()) !== undefined)
    .map((kv) => decodeJson<ReleaseMeta>(kv.key.toString(), kv.value))
    .sort((a, b) => a.release - b.release);
}

/** The manifest a meta names: relative key → blob. Throws EtcdError when a part is missing. */
export async function readManifest(client: Etcd3, prefix: string, meta: ReleaseMeta, revision?: string): Promise<Map<string, ManifestEntry>> {
  const k = fleetKeys(prefix);
  const { kvs } = await rangeOf(client, k.manifestParts(meta.manifest), revision === undefined ? {} : { revision });
  if (kvs.length !== meta.manifestParts) {
    throw new EtcdError('E_FLEET', `release ${meta.release}: its manifest ${meta.manifest} has ${kvs.length} of ${meta.manifestParts} part(s) in etcd`);
  }
  const out = new Map<string, ManifestEntry>();
  for (const kv of kvs) {
    for (const [key, e] of Object.entries(decodeJson<ManifestPart>(kv.key.toString(), kv.value).entries)) out.set(key, e);
  }
  return out;
}

/** A release's content: relative key → bytes (read at one revision). */
export async function readContent(client: Etcd3, prefix: string, meta: ReleaseMeta): Promise<Map<string, Buffer>> {
  const { revision } = await getKv(client, fleetKeys(prefix).head);
  return readBlobs(client, prefix, await readManifest(client, prefix, meta, revision), { release: meta.release, revision });
}

/** The bytes of `entries` (relative key → blob), 16 reads at a time, each blob once. */
export async function readBlobs(
  client: Etcd3,
  prefix: string,
  entries: ReadonlyMap<string, ManifestEntry>,
  at: { release?: number; revision?: string } = {},
): Promise<Map<string, Buffer>> {
  const k = fleetKeys(prefix);
  const shas = [...new Set([...entries.values()].map((e) => e.sha))];
  const bytes = new Map<string, Buffer>();
  for (let i = 0; i < shas.length; i += 16) {
    await Promise.all(
      shas.slice(i, i + 16).map(async (sha) => {
        const { kv } = await getKv(client, k.blob(sha), at.revision);
        if (kv) bytes.set(sha, kv.value);
      }),
    );
  }
  const out = new Map<string, Buffer>();
  for (const [key, e] of [...entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const b = bytes.get(e.sha);
    if (!b) throw new EtcdError('E_FLEET', `${at.release === undefined ? '' : `release ${at.release}: `}the content of ${key} (blob ${e.sha}) is missing from etcd`);
    out.set(key, b);
  }
  return out;
}

/** Writes puts in transactions of at most TXN_MAX_OPS operations and TXN_MAX_BYTES of values. A transaction
 *  etcd refuses as too large or as too many operations (a member configured below the defaults) is split in two
 *  and sent again; a single value it refuses is named with its size. */
async function putInBatches(client: Etcd3, puts: ReadonlyArray<readonly [string, Uint8Array]>, describe: (key: string) => string): Promise<void> {
  const send = async (ops: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> => {
    try {
      await client.kv.txn({ compare: [], success: ops.map(([k, v]) => ({ request_put: { key: buf(k), value: Buffer.from(v) } })), failure: [] });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const tooLarge = /request is too large|grpc: received message larger than max/i.test(msg);
      if ((tooLarge || /too many operations in txn request/i.test(msg)) && ops.length > 1) {
        const half = Math.ceil(ops.length / 2);
        await send(ops.slice(0, half));
        await send(ops.slice(half));
        return;
      }
      if (tooLarge) {
        const [key, value] = ops[0]!;
        throw new EtcdError(
          'E_SOURCE_LIMIT',
          `etcd refused ${describe(key)}: ${value.byteLength} bytes is over its request limit (--max-request-bytes, default 1.5 MiB = 1572864 bytes); keep each config under it (maxFileBytes) or raise the limit on every etcd member`,
          { cause: err },
        );
      }
      throw err;
    }
  };
  let batch: Array<readonly [string, Uint8Array]> = [];
  let bytes = 0;
  for (const [key, value] of puts) {
    if (batch.length >= TXN_MAX_OPS || (batch.length > 0 && bytes + value.byteLength > TXN_MAX_BYTES)) {
      await send(batch);
      batch = [];
      bytes = 0;
    }
    batch.push([key, value]);
    bytes += value.byteLength + key.length;
  }
  if (batch.length > 0) await send(batch);
}


/** Someone else moved the head (or deleted content this push reused) between the read and the switch. */
export class FleetConflictError extends EtcdError {}

export interface PublishOptions {
  readonly message?: string;
  /** user@host. */
  readonly author: string;
  /** `--canary`: the instances that get the release; the others stay on the stable one. */
  readonly canary?: { readonly ids: readonly string[]; readonly auto?: { readonly bakeMs: number } } | undefined;
  /** `rollback --to N`. */
  readonly rollbackOf?: number;
  /** Plan only. */
  readonly dryRun?: boolean;
  /** Releases kept by GC (default {@link DEFAULT_KEEP}). */
  readonly keep?: number;
  /** Plain config keys under the prefix and no head yet: switch to releases anyway (`--adopt`). */
  readonly adopt?: boolean;
  /** With adopt: delete those plain keys after the switch. */
  readonly prunePlain?: boolean;
  /** Head switches tried before giving up. Default 5. */
  readonly maxAttempts?: number;
  readonly onConflict?: (attempt: number) => void;
  /** Awaited between the plan and the head's transaction (tests put a rival there). */
  readonly beforeSwitch?: (plan: PublishPlan) => Promise<void>;
  readonly now?: () => number;
}

export interface PublishPlan {
  /** The release number this push creates (if it lands at this attempt). */
  readonly release: number;
  /** The stable release it is made from (undefined: the first release). */
  readonly parent: number | undefined;
  readonly changed: readonly string[];
  /** The changed keys the parent does not have. */
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly unchanged: number;
  /** Blobs this push uploads (the others exist). */
  readonly upload: number;
  readonly uploadBytes: number;
  /** Plain config keys under the prefix (only looked at before the first release). */
  readonly plainKeys: readonly string[];
}

export interface PublishResult {
  readonly plan: PublishPlan;
  /** The release created; undefined on a dry run or when the content is the stable release's already. */
  readonly release: number | undefined;
  /** The revision of the head's switch. */
  readonly revision: string | undefined;
  readonly head: Head | undefined;
  readonly attempts: number;
  readonly gc: GcResult | undefined;
  readonly prunedPlain: number;
  /** Deleting the plain keys failed after the switch (the release is out; the keys are ignored). */
  readonly pruneError?: string;
}

const PLAIN_SAMPLE = 5;

/** Most names a meta lists per list: the meta goes in the head's transaction, which must stay small. */
export const META_MAX_NAMES = 2000;


/**
 * Publishes `entries` (relative key → content) as the next release under `prefix`, or plans it (`dryRun`).
 * Returns without a release when the content is the stable release's and no canary is asked for.
 */
export async function publishRelease(client: Etcd3, prefix: string, entries: ReadonlyMap<string, ReleaseEntry>, options: PublishOptions): Promise<PublishResult> {
  const k = fleetKeys(prefix);
  const now = options.now ?? Date.now;
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    // The gc key first: any deletion after this read moves it, and the switch below then fails.
    const gcRead = await getKv(client, k.gc);
    const gcMod = gcRead.kv?.mod_revision ?? '0';
    const { head, headMod, revision } = await readHead(client, prefix);
    if (head?.canary && !options.canary && options.rollbackOf === undefined) {
      throw new EtcdError('E_FLEET', `a canary of release ${head.canary.release} is in progress on ${head.canary.ids.join(', ')}: \`hotconf rollout promote\` or \`hotconf rollout abort\` it first`);
    }
    if (head?.canary && options.canary) {
      throw new EtcdError('E_FLEET', `a canary of release ${head.canary.release} is already in progress: \`hotconf rollout promote\` or \`hotconf rollout abort\` it first`);
    }
    if (!head && options.canary) throw new EtcdError('E_FLEET', 'the first release cannot be a canary: there is no stable release for the other instances (push it without --canary)');
    let plainKeys: string[] = [];
    if (!head) {
      const { kvs } = await rangeOf(client, prefix, { keysOnly: true, revision });
      // Only keys an instance would serve as configs (the naming rule): not READMEs, not the fleet's own keys.
      plainKeys = kvs.map((kv) => kv.key.toString()).filter((key) => configNameOf(key.slice(prefix.length)) !== undefined).sort();
      if (plainKeys.length > 0 && !options.adopt && !options.dryRun) {
        const sample = plainKeys.slice(0, PLAIN_SAMPLE).join(', ') + (plainKeys.length > PLAIN_SAMPLE ? ', …' : '');
        throw new EtcdError(
          'E_FLEET',
          `${prefix} holds ${plainKeys.length} plain config key(s) (${sample}) and no release yet: a release would hide them from every instance. ` +
            'Pass --adopt to publish the directory as release 1 (add --prune to delete the plain keys after the switch), or --plain to write plain keys as before',
        );
      }
    }
    const metas = await rangeOf(client, k.releases, { keysOnly: true, revision });
    const last = Math.max(0, head?.stable ?? 0, head?.canary?.release ?? 0, ...metas.kvs.map((kv) => releaseOfKey(prefix, kv.key.toString()) ?? 0));
    const release = last + 1;
    const parentMeta = head ? await readRelease(client, prefix, head.stable, revision) : undefined;
    if (head && !parentMeta) throw new EtcdError('E_FLEET', `the head names release ${head.stable}, whose meta ${k.release(head.stable)} is missing`);
    const parent = parentMeta ? await readManifest(client, prefix, parentMeta, revision) : new Map<string, ManifestEntry>();
    const changed: string[] = [];
    let unchanged = 0;
    for (const [key, e] of entries) {
      const p = parent.get(key);
      if (p && p.sha === e.sha) unchanged++;
      else changed.push(key);
    }
    changed.sort();
    const removed = [...parent.keys()].filter((key) => !entries.has(key)).sort();
    const blobs = new Set((await rangeOf(client, k.blobs, { keysOnly: true, revision })).kvs.map((kv) => kv.key.toString().slice(k.blobs.length)));
    const missing = new Map<string, ReleaseEntry>();
    for (const e of entries.values()) if (!blobs.has(e.sha)) missing.set(e.sha, e);
    const plan: PublishPlan = {
      release,
      parent: parentMeta?.release,
      changed,
      added: changed.filter((key) => !parent.has(key)),
      removed,
      unchanged,
      upload: missing.size,
      uploadBytes: [...missing.values()].reduce((n, e) => n + e.size, 0),
      plainKeys,
    };
    const same = head !== undefined && changed.length === 0 && removed.length === 0 && !options.canary;
    if (options.dryRun || same) return { plan, release: undefined, revision: undefined, head, attempts: attempt, gc: undefined, prunedPlain: 0 };

    const puts: Array<readonly [string, Uint8Array]> = [];
    for (const [sha, e] of missing) {
      if (!e.bytes) throw new EtcdError('E_FLEET', `the content of release ${options.rollbackOf ?? '?'} is incomplete in etcd (blob ${sha} missing: removed by GC?)`);
      puts.push([k.blob(sha), e.bytes]);
    }
    const blobName = new Map([...entries].map(([key, e]) => [k.blob(e.sha), key]));
    await putInBatches(client, puts, (key) => `${blobName.get(key) ?? key} (${key})`);
    const manifest = encodeManifest(new Map([...entries].map(([key, e]) => [key, { sha: e.sha, size: e.size }])));
    const haveManifest = (await rangeOf(client, k.manifestParts(manifest.sha), { keysOnly: true })).kvs.length === manifest.parts.length;
    if (!haveManifest) await putInBatches(client, manifest.parts.map((p, i) => [k.manifestPart(manifest.sha, i), buf(p)] as const), (key) => `manifest part ${key}`);

    const at = now();
    const meta: ReleaseMeta = {
      release,
      createdAt: at,
      author: options.author,
      message: options.message ?? '',
      manifest: manifest.sha,
      manifestParts: manifest.parts.length,
      entries: entries.size,
      bytes: [...entries.values()].reduce((n, e) => n + e.size, 0),
      changed: changed.slice(0, META_MAX_NAMES),
      removed: removed.slice(0, META_MAX_NAMES),
      ...(changed.length > META_MAX_NAMES ? { changedCount: changed.length } : {}),
      ...(removed.length > META_MAX_NAMES ? { removedCount: removed.length } : {}),
      ...(parentMeta ? { parent: parentMeta.release } : {}),
      ...(options.rollbackOf === undefined ? {} : { rollbackOf: options.rollbackOf }),
    };
    const canary = options.canary ? { release, ids: [...options.canary.ids], ...(options.canary.auto ? { auto: options.canary.auto } : {}), startedAt: at } : null;
    const newHead: Head = {
      format: LAYOUT_FORMAT,
      stable: canary && head ? head.stable : release,
      canary,
      updatedAt: at,
      by: options.author,
      reason: options.rollbackOf !== undefined ? `rollback to release ${options.rollbackOf}` : canary ? `push (canary on ${canary.ids.length})` : 'push',
    };
    await options.beforeSwitch?.(plan);
    const compare: ICompare[] = [
      headMod === '0'
        ? { key: buf(k.head), target: 'Create', result: 'Equal', create_revision: '0' }
        : { key: buf(k.head), target: 'Mod', result: 'Equal', mod_revision: headMod },
      { key: buf(k.release(release)), target: 'Create', result: 'Equal', create_revision: '0' },
      gcMod === '0' ? { key: buf(k.gc), target: 'Create', result: 'Equal', create_revision: '0' } : { key: buf(k.gc), target: 'Mod', result: 'Equal', mod_revision: gcMod },
    ];
    const success: IRequestOp[] = [
      { request_put: { key: buf(k.release(release)), value: buf(JSON.stringify(meta)) } },
      { request_put: { key: buf(k.head), value: buf(JSON.stringify(newHead)) } },
    ];
    // A rollback during a canary ends it: its release is marked aborted, in the same transaction.
    const ended = head?.canary && !canary ? await readRelease(client, prefix, head.canary.release, revision) : undefined;
    if (ended) {
      const aborted: ReleaseMeta = { ...ended, aborted: { at, by: options.author, why: newHead.reason } };
      success.push({ request_put: { key: buf(k.release(ended.release)), value: buf(JSON.stringify(aborted)) } });
    }
    const txn = await client.kv.txn({ compare, success, failure: [] });
    if (txn.succeeded) {
      // The release is out: what follows is housekeeping, whose failure is reported, not thrown.
      let gc: GcResult;
      try {
        gc = await collectGarbage(client, prefix, { keep: options.keep ?? DEFAULT_KEEP, headMod: txn.header.revision, olderThan: headMod });
      } catch (err) {
        gc = { releases: 0, manifests: 0, blobs: 0, complete: false, error: err instanceof Error ? err.message : String(err) };
      }
      let prunedPlain = 0;
      let pruneError: string | undefined;
      try {
        for (let i = 0; options.prunePlain && i < plainKeys.length; i += TXN_MAX_OPS) {
          const ops: IRequestOp[] = plainKeys.slice(i, i + TXN_MAX_OPS).map((key) => ({ request_delete_range: { key: buf(key) } }));
          await client.kv.txn({ compare: [], success: ops, failure: [] });
          prunedPlain += ops.length;
        }
      } catch (err) {
        pruneError = err instanceof Error ? err.message : String(err);
      }
      return { plan, release, revision: txn.header.revision, head: newHead, attempts: attempt, gc, prunedPlain, ...(pruneError === undefined ? {} : { pruneError }) };
    }
    if (attempt >= maxAttempts) {
      throw new FleetConflictError('E_PUSH_CONFLICT', `etcd: the release head under ${prefix} kept moving during the push (${attempt} attempts); no release was created by this push`);
    }
    options.onConflict?.(attempt);
  }
}

export interface GcResult {
  readonly releases: number;
  readonly manifests: number;
  readonly blobs: number;
  /** False when another writer moved the head meanwhile (it collects next time), or on an error. */
  readonly complete: boolean;
  /** Why it stopped, when it failed (the release itself is out). */
  readonly error?: string;
}

/**
 * Deletes the metas of releases beyond the last `keep` (the stable and canary releases are always kept), the
 * manifests no kept release names and the blobs no kept manifest names — only content created at or before
 * `olderThan` (the head's mod_revision as read before the push: a concurrent push's fresh content survives).
 * Every deletion is guarded by the head still being at `headMod` and moves the gc key.
 */
export async function collectGarbage(client: Etcd3, prefix: string, options: { keep: number; headMod: string; olderThan: string }): Promise<GcResult> {
  const k = fleetKeys(prefix);
  const { head, headMod, revision } = await readHead(client, prefix);
  let result = { releases: 0, manifests: 0, blobs: 0, complete: true };
  if (!head || headMod !== options.headMod) return { ...result, complete: false };
  const metas = await listReleases(client, prefix, revision);
  const keepNumbers = new Set(metas.slice(-Math.max(1, options.keep)).map((m) => m.release));
  keepNumbers.add(head.stable);
  if (head.canary) keepNumbers.add(head.canary.release);
  const kept = metas.filter((m) => keepNumbers.has(m.release));
  const dropMetas = metas.filter((m) => !keepNumbers.has(m.release)).map((m) => k.release(m.release));
  const keptManifests = new Set(kept.map((m) => m.manifest));
  const referenced = new Set<string>();
  for (const m of kept) for (const e of (await readManifest(client, prefix, m, revision)).values()) referenced.add(e.sha);
  const old = (kv: IKeyValue) => BigInt(kv.create_revision) <= BigInt(options.olderThan);
  const manifestKeys = (await rangeOf(client, k.manifests, { keysOnly: true, revision })).kvs
    .filter((kv) => old(kv) && !keptManifests.has(kv.key.toString().slice(k.manifests.length).split('/')[0]!))
    .map((kv) => kv.key.toString());
  const blobKeys = (await rangeOf(client, k.blobs, { keysOnly: true, revision })).kvs
    .filter((kv) => old(kv) && !referenced.has(kv.key.toString().slice(k.blobs.length)))
    .map((kv) => kv.key.toString());
  const all: Array<[keyof typeof result, string]> = [
    ...dropMetas.map((key) => ['releases', key] as [keyof typeof result, string]),
    ...manifestKeys.map((key) => ['manifests', key] as [keyof typeof result, string]),
    ...blobKeys.map((key) => ['blobs', key] as [keyof typeof result, string]),
  ];
  for (let i = 0; i < all.length; i += TXN_MAX_OPS - 1) {
    const batch = all.slice(i, i + TXN_MAX_OPS - 1);
    const txn = await client.kv.txn({
      compare: [{ key: buf(k.head), target: 'Mod', result: 'Equal', mod_revision: options.headMod }],
      success: [...batch.map(([, key]) => ({ request_delete_range: { key: buf(key) } })), { request_put: { key: buf(k.gc), value: buf(String(Date.now())) } }],
      failure: [],
    });
    if (!txn.succeeded) return { ...result, complete: false };
    for (const [what] of batch) result = { ...result, [what]: (result[what] as number) + 1 };
  }
  return result;
}

export interface HistoryEntry {
  readonly release: number;
  readonly createdAt: string;
  readonly author: string;
  readonly message: string;
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** How many changed / removed (the lists may hold only the first {@link META_MAX_NAMES}). */
  readonly changedCount: number;
  readonly removedCount: number;
  readonly entries: number;
  readonly bytes: number;
  /** stable, canary, aborted, or '' (an older release). */
  readonly state: 'stable' | 'canary' | 'aborted' | '';
  readonly rollbackOf?: number;
  readonly aborted?: ReleaseMeta['aborted'];
}

/** The kept releases, newest first, with what the head says of them. */
export async function history(client: Etcd3, prefix: string, limit?: number): Promise<{ head: Head | undefined; releases: HistoryEntry[] }> {
  const { head, revision } = await readHead(client, prefix);
  const metas = (await listReleases(client, prefix, revision)).reverse().slice(0, limit ?? Infinity);
  return {
    head,
    releases: metas.map((m) => ({
      release: m.release,
      createdAt: new Date(m.createdAt).toISOString(),
      author: m.author,
      message: m.message,
      changed: m.changed,
      removed: m.removed,
      changedCount: m.changedCount ?? m.changed.length,
      removedCount: m.removedCount ?? m.removed.length,
      entries: m.entries,
      bytes: m.bytes,
      state: head?.stable === m.release ? 'stable' : head?.canary?.release === m.release ? 'canary' : m.aborted ? 'aborted' : '',
      ...(m.rollbackOf === undefined ? {} : { rollbackOf: m.rollbackOf }),
      ...(m.aborted ? { aborted: m.aborted } : {}),
    })),
  };
}

/** `hotconf rollback --to N`: N's content, published as a new release. */
export async function rollback(client: Etcd3, prefix: string, to: number, options: Omit<PublishOptions, 'rollbackOf' | 'canary'>): Promise<PublishResult> {
  const meta = await readRelease(client, prefix, to);
  if (!meta) {
    const kept = (await listReleases(client, prefix)).map((m) => m.release);
    throw new EtcdError('E_FLEET', `release ${to} is not in etcd under ${prefix} (kept: ${kept.length === 0 ? 'none' : kept.length === 1 ? String(kept[0]) : `${kept[0]}…${kept.at(-1)}`}; see \`hotconf history\`)`);
  }
  const manifest = await readManifest(client, prefix, meta);
  return publishRelease(client, prefix, manifest, { ...options, rollbackOf: to, message: options.message || `rollback to release ${to}` });
}
