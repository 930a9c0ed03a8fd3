// The fleet's key layout under an etcd prefix P (issue 15): releases, their content, the rollout head and the
// live instances. Plain keys (`P` + `app.yaml`) are the other way to use a prefix; everything here lives under
// the hidden segment `P.hotconf/`, which the naming rule never maps to a config.
//
//   P.hotconf/head                       Head: the stable release and the canary in progress (the one switch)
//   P.hotconf/releases/<N, 10 digits>    ReleaseMeta: who, when, why, what changed; names its manifest
//   P.hotconf/manifests/<sha>/<part>     ManifestPart: relative key → blob sha and size (content-addressed)
//   P.hotconf/blobs/<sha256 hex>         the bytes of one config value, as pushed (content-addressed)
//   P.hotconf/instances/<id>             InstanceRecord, written by each `hotconf run --etcd` under a lease
//   P.hotconf/gc                         moved by every deletion of content (GC): a push that reuses existing
//                                        blobs guards its head switch with it, so it never names deleted content
//
// A release becomes visible to the fleet in one transaction: the head's compare-and-swap, with the release's
// meta created in the same transaction. Blobs and manifest parts are written before it (any number of
// transactions: they are invisible until a meta names them), so a push of any size switches every instance from
// N-1 to N in one step. Content that no kept release references is removed after the switch.
import { createHash } from 'node:crypto';

/** Version of the layout, in the head; an instance refuses a head whose format it does not know. */
export const LAYOUT_FORMAT = 1;

/** The hidden segment under the prefix that holds the fleet's keys. */
export const FLEET_SEGMENT = '.hotconf/';

export const fleetKeys = (prefix: string) => {
  const root = prefix + FLEET_SEGMENT;
  return {
    root,
    head: root + 'head',
    releases: root + 'releases/',
    release: (n: number) => `${root}releases/${String(n).padStart(10, '0')}`,
    manifests: root + 'manifests/',
    manifestPart: (sha: string, part: number) => `${root}manifests/${sha}/${String(part).padStart(4, '0')}`,
    manifestParts: (sha: string) => `${root}manifests/${sha}/`,
    blobs: root + 'blobs/',
    blob: (sha: string) => `${root}blobs/${sha}`,
    instances: root + 'instances/',
    instance: (id: string) => `${root}instances/${encodeURIComponent(id)}`,
    gc: root + 'gc',
  };
};

/** The release number in a `releases/<N>` key, or undefined for any other key. */
export function releaseOfKey(prefix: string, key: string): number | undefined {
  const base = fleetKeys(prefix).releases;
  if (!key.startsWith(base)) return undefined;
  const rest = key.slice(base.length);
  return /^\d{10}$/.test(rest) ? Number(rest) : undefined;
}

export interface CanaryState {
  /** The release under trial. */
  readonly release: number;
  /** The instances that run it (chosen by {@link chooseCanary} at push time). */
  readonly ids: readonly string[];
  /** `--auto`: abort on the first refusal, promote after every canary instance ran it healthily this long. */
  readonly auto?: { readonly bakeMs: number };
  /** ms since the epoch. */
  readonly startedAt: number;
}

export interface Head {
  readonly format: typeof LAYOUT_FORMAT;
  /** The release every instance outside the canary runs. */
  readonly stable: number;
  readonly canary: CanaryState | null;
  readonly updatedAt: number;
  /** Who moved the head last, and how (`push`, `promote`, `abort`, `auto-abort: …`, `auto-promote`, `rollback`). */
  readonly by: string;
  readonly reason: string;
}

export interface ReleaseMeta {
  readonly release: number;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** user@host of the pusher. */
  readonly author: string;
  readonly message: string;
  /** sha-256 of the manifest (the sorted entries); its parts are under manifests/<sha>/. */
  readonly manifest: string;
  readonly manifestParts: number;
  readonly entries: number;
  readonly bytes: number;
  /** Config keys (relative to the prefix, e.g. `db/primary.yaml`) added or changed against the parent, and removed. */
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Set when `changed` / `removed` hold only the first of more names (the meta stays far under etcd's request limit). */
  readonly changedCount?: number;
  readonly removedCount?: number;
  /** The release this one was made from (the stable one at push time), if any. */
  readonly parent?: number;
  /** `hotconf rollback --to N`: this release is N's content. */
  readonly rollbackOf?: number;
  /** Set when its canary was aborted (by `rollout abort` or an automatic abort), in the head's transaction. */
  readonly aborted?: { readonly at: number; readonly by: string; readonly why: string };
}

export interface ManifestEntry {
  readonly sha: string;
  readonly size: number;
}

export interface ManifestPart {
  readonly entries: Readonly<Record<string, ManifestEntry>>;
}

export type InstanceState = 'ok' | 'error';

export interface InstanceRecord {
  readonly id: string;
  /** The release whose content the instance serves (undefined before its first release: plain keys, or none). */
  readonly release: number | undefined;
  /** The release the head tells it to run (differs from `release` while it refuses or fetches it). */
  readonly target: number | undefined;
  /** `error`: it refused `target` (schema, application check); it keeps serving `release`. */
  readonly state: InstanceState;
  readonly errors: number;
  /** ms since the epoch when it applied `release`. */
  readonly appliedAt: number | undefined;
  /** ms since the epoch of this record. */
  readonly seenAt: number;
  readonly startedAt: number;
  /** Serving a cached release while etcd was unreachable at start (since when, ms). */
  readonly staleSince?: number;
  readonly host: string;
  readonly pid: number;
  readonly hotconf: string;
}

export const sha256 = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

/** Manifest parts stay well under etcd's 1.5 MiB request limit (128 operations, 1.5 MiB by default). */
export const MANIFEST_PART_BYTES = 512 * 1024;

/** Splits sorted entries into parts of at most {@link MANIFEST_PART_BYTES} of JSON; returns the parts and the
 *  manifest's sha (over the sorted `key\0sha\0size\n` lines, independent of how it was split). */
export function encodeManifest(entries: ReadonlyMap<string, ManifestEntry>): { sha: string; parts: string[] } {
  const keys = [...entries.keys()].sort();
  const hash = createHash('sha256');
  const parts: string[] = [];
  let current: Record<string, ManifestEntry> = {};
  let size = 2;
  for (const key of keys) {
    const e = entries.get(key)!;
    hash.update(`${key}\0${e.sha}\0${e.size}\n`);
    const add = JSON.stringify(key).length + JSON.stringify(e).length + 2;
    if (size + add > MANIFEST_PART_BYTES && Object.keys(current).length > 0) {
      parts.push(JSON.stringify({ entries: current } satisfies ManifestPart));
      current = {};
      size = 2;
    }
    current[key] = e;
    size += add;
  }
  parts.push(JSON.stringify({ entries: current } satisfies ManifestPart));
  return { sha: hash.digest('hex'), parts };
}

/** Parses JSON written by this module; throws an Error naming the key on anything else. */
export function decodeJson<T>(key: string, bytes: Uint8Array | string): T {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')) as T;
  } catch (err) {
    throw new Error(`etcd key ${key} is not the JSON hotconf writes: ${(err as Error).message}`);
  }
}

export function decodeHead(key: string, bytes: Uint8Array | string): Head {
  const head = decodeJson<Omit<Head, 'format'> & { format: unknown }>(key, bytes);
  if (head.format !== LAYOUT_FORMAT) throw new Error(`etcd key ${key} has layout format ${JSON.stringify(head.format)}; this hotconf reads format ${LAYOUT_FORMAT} (upgrade hotconf)`);
  if (!Number.isSafeInteger(head.stable) || head.stable < 1) throw new Error(`etcd key ${key}: stable release must be a positive integer`);
  return head as Head;
}

/** The stable hash that orders instances for a canary: sha-256 of the id. */
export const canaryRank = (id: string): string => sha256(id);

/** `K` or `P%` of `live` instances (at least 1 when there is any instance and K/P > 0), by {@link canaryRank}. */
export function chooseCanary(live: readonly string[], spec: string): string[] {
  const m = /^(\d+)(%?)$/.exec(spec.trim());
  if (!m) throw new Error(`--canary must be a number of instances (3) or a percentage (10%), not '${spec}'`);
  const n = Number(m[1]);
  if (m[2] === '%' && n > 100) throw new Error(`--canary ${spec}: a percentage is at most 100%`);
  const count = m[2] === '%' ? Math.ceil((live.length * n) / 100) : n;
  return [...new Set(live)].sort((a, b) => (canaryRank(a) < canaryRank(b) ? -1 : canaryRank(a) > canaryRank(b) ? 1 : a < b ? -1 : 1)).slice(0, count);
}

/** The release an instance with this id runs under this head. */
export const targetOf = (head: Head, id: string): number => (head.canary && head.canary.ids.includes(id) ? head.canary.release : head.stable);

export type RolloutDecision =
  | { readonly action: 'none' }
  | { readonly action: 'wait'; readonly why: string }
  | { readonly action: 'abort'; readonly why: string }
  | { readonly action: 'promote'; readonly why: string };

/**
 * What an `--auto` canary calls for now: abort at once when a canary instance reports `error` on the canary
 * release; promote when every canary instance has applied it and been `ok` on it for the bake time; else wait.
 * Pure: the pusher (`push --wait`) and the canary instances all run it and race for the head's CAS.
 */
export function decideRollout(head: Head, instances: readonly InstanceRecord[], now: number): RolloutDecision {
  const canary = head.canary;
  if (!canary?.auto) return { action: 'none' };
  const byId = new Map(instances.map((i) => [i.id, i]));
  for (const id of canary.ids) {
    const i = byId.get(id);
    if (i && i.target === canary.release && i.state === 'error') {
      return { action: 'abort', why: `instance ${id} refused release ${canary.release} (${i.errors} error${i.errors === 1 ? '' : 's'})` };
    }
  }
  const waiting: string[] = [];
  for (const id of canary.ids) {
    const i = byId.get(id);
    if (!i) waiting.push(`${id} not seen`);
    else if (i.release !== canary.release || i.appliedAt === undefined) waiting.push(`${id} on release ${String(i.release)}`);
    else if (now - i.appliedAt < canary.auto.bakeMs) waiting.push(`${id} baking (${Math.ceil((canary.auto.bakeMs - (now - i.appliedAt)) / 1000)} s left)`);
  }
  if (waiting.length > 0) return { action: 'wait', why: waiting.join(', ') };
  return { action: 'promote', why: `every canary instance (${canary.ids.length}) ran release ${canary.release} healthily for ${canary.auto.bakeMs / 1000} s` };
}
