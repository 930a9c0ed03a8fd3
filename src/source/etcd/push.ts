// `hotconf push`: the guarded writer of a directory into an etcd prefix. One transaction guarded by the
// mod_revision of every key read, so that concurrent pushes never interleave.
import type { Etcd3, ICompare } from 'etcd3';
import { EtcdError, prefixEnd } from './client.js';
import { FLEET_SEGMENT } from './layout.js';

export interface PushPlan {
  /** Keys to write, with their new bytes. */
  readonly put: ReadonlyMap<string, Uint8Array>;
  /** Keys to delete (`prune`). */
  readonly remove: readonly string[];
  /** Keys whose value is already what the directory holds. */
  readonly unchanged: readonly string[];
  /** The revision the plan was computed at. */
  readonly revision: string;
  /** mod_revision of every key read under the prefix (the transaction's guard). */
  readonly guard: ReadonlyMap<string, string>;
}

export interface PushResult {
  readonly plan: PushPlan;
  /** The revision of the transaction; undefined when nothing was written. */
  readonly revision: string | undefined;
  /** Transactions tried (1 unless a concurrent writer moved a key in between). */
  readonly attempts: number;
}

/** Conflicting writers kept moving the keys: no transaction could land. */
export class PushConflictError extends EtcdError {}

/**
 * Writes `desired` (key → bytes, every key under the prefix) in one etcd transaction, guarded by the
 * mod_revision of every key it read under the prefix and the absence of every new key, so that a concurrent
 * push can never interleave: if the guard fails, the prefix is read again and the plan recomputed, up to
 * `maxAttempts` times. `prune` deletes the keys under the prefix that `desired` lacks; `dryRun` only plans.
 */
export async function pushEntries(
  client: Etcd3,
  prefix: string,
  desired: ReadonlyMap<string, Uint8Array>,
  options: {
    prune?: boolean;
    dryRun?: boolean;
    /** Transactions tried before giving up with PushConflictError. Default 5. */
    maxAttempts?: number;
    onConflict?: (attempt: number) => void;
    /** Awaited between the read and the transaction (tests put a rival writer there). */
    beforeCommit?: (plan: PushPlan) => Promise<void>;
  } = {},
): Promise<PushResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const res = await client.getAll().prefix(prefix).exec();
    // The fleet's own keys (P.hotconf/: instance records, releases) are not configs: not read, guarded or pruned.
    const fleet = prefix + FLEET_SEGMENT;
    const current = new Map(res.kvs.filter((kv) => !kv.key.toString().startsWith(fleet)).map((kv) => [kv.key.toString(), kv]));
    const put = new Map<string, Uint8Array>();
    const unchanged: string[] = [];
    for (const [key, bytes] of desired) {
      const kv = current.get(key);
      if (kv && Buffer.compare(kv.value, bytes) === 0) unchanged.push(key);
      else put.set(key, bytes);
    }
    const remove = options.prune ? [...current.keys()].filter((k) => !desired.has(k)).sort() : [];
    const plan: PushPlan = {
      put,
      remove,
      unchanged: unchanged.sort(),
      revision: res.header.revision,
      guard: new Map([...current].map(([k, kv]) => [k, kv.mod_revision])),
    };
    if (options.dryRun || (put.size === 0 && remove.length === 0)) return { plan, revision: undefined, attempts: attempt };
    await options.beforeCommit?.(plan);
    // Guard: every key read still has the mod_revision it was read at (a deleted one fails too), every new key is
    // still absent, and no key under the prefix was written after the read: the prefix is exactly as planned.
    const cmp: ICompare[] = [...current.entries()].map(([k, kv]) => ({ key: Buffer.from(k), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }));
    for (const k of put.keys()) if (!current.has(k)) cmp.push({ key: Buffer.from(k), target: 'Create', result: 'Equal', create_revision: '0' });
    // (in two ranges around P.hotconf/, whose instance records move every few seconds)
    const below = (BigInt(res.header.revision) + 1n).toString();
    cmp.push({ key: Buffer.from(prefix), range_end: Buffer.from(fleet), target: 'Mod', result: 'Less', mod_revision: below });
    cmp.push({ key: prefixEnd(fleet), range_end: prefixEnd(prefix), target: 'Mod', result: 'Less', mod_revision: below });
    const txn = await client.kv.txn({
      compare: cmp,
      success: [
        ...[...put].map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })),
        ...remove.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
      ],
      failure: [],
    });
    if (txn.succeeded) return { plan, revision: txn.header.revision, attempts: attempt };
    if (attempt >= maxAttempts) {
      throw new PushConflictError(
        'E_PUSH_CONFLICT',
        `etcd: the keys under ${prefix} kept changing during the push (${attempt} attempts); nothing was written by this push`,
      );
    }
    options.onConflict?.(attempt);
  }
}
