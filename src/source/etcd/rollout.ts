// Staged rollout (issue 15), the writer's side: the live instances, `hotconf rollout status|promote|abort`, and
// the wait of `hotconf push --canary … --auto --wait`, which runs decideRollout() (layout.ts) and moves the head
// when it says abort or promote. Every head move is a compare-and-swap on the head's mod_revision: when several
// deciders (the pusher, each canary instance) race, one wins and the others see the result on their next read.
import type { Etcd3, IKeyValue, IRequestOp } from 'etcd3';
import { EtcdError } from './client.js';
import { decideRollout, decodeJson, fleetKeys, type Head, type InstanceRecord, type ReleaseMeta, type RolloutDecision } from './layout.js';
import { rangeOf, readHead, readRelease } from './releases.js';

/** The live instances (their records exist while their lease does), sorted by id. Unreadable records are skipped. */
export async function listInstances(client: Etcd3, prefix: string, revision?: string): Promise<InstanceRecord[]> {
  const { kvs } = await rangeOf(client, fleetKeys(prefix).instances, revision === undefined ? {} : { revision });
  return recordsOf(kvs);
}

/** Instance records as read from etcd, sorted by id; a record hotconf did not write is not an instance (skipped). */
export function recordsOf(kvs: Iterable<IKeyValue>): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  for (const kv of kvs) {
    try {
      out.push(decodeJson<InstanceRecord>(kv.key.toString(), kv.value));
    } catch {
      // not an instance
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export interface RolloutStatus {
  readonly stable: number | null;
  readonly canary: Head['canary'];
  readonly updatedAt: number | null;
  readonly by: string | null;
  readonly reason: string | null;
  readonly instances: ReadonlyArray<Pick<InstanceRecord, 'id' | 'release' | 'target' | 'state' | 'errors' | 'seenAt'>>;
}

export async function rolloutStatus(client: Etcd3, prefix: string): Promise<RolloutStatus> {
  const { head, revision } = await readHead(client, prefix);
  const instances = await listInstances(client, prefix, revision);
  return {
    stable: head?.stable ?? null,
    canary: head?.canary ?? null,
    updatedAt: head?.updatedAt ?? null,
    by: head?.by ?? null,
    reason: head?.reason ?? null,
    instances: instances.map((i) => ({ id: i.id, release: i.release ?? null, target: i.target ?? null, state: i.state, errors: i.errors, seenAt: i.seenAt }) as RolloutStatus['instances'][number]),
  };
}

/**
 * Ends the canary in `head` (read at `headMod`): `promote` makes its release the stable one, `abort` returns its
 * instances to the stable release and marks the release aborted in its meta. One transaction, guarded by the head's
 * mod_revision; returns false when the head moved meanwhile (someone else decided first: read it again).
 */
export async function endCanary(
  client: Etcd3,
  prefix: string,
  head: Head,
  headMod: string,
  action: 'promote' | 'abort',
  options: { by: string; reason: string; now?: number },
): Promise<boolean> {
  const canary = head.canary;
  if (!canary) return false;
  const k = fleetKeys(prefix);
  const at = options.now ?? Date.now();
  const next: Head = { ...head, stable: action === 'promote' ? canary.release : head.stable, canary: null, updatedAt: at, by: options.by, reason: options.reason };
  const success: IRequestOp[] = [{ request_put: { key: Buffer.from(k.head), value: Buffer.from(JSON.stringify(next)) } }];
  if (action === 'abort') {
    const meta = await readRelease(client, prefix, canary.release);
    if (meta) {
      const aborted: ReleaseMeta = { ...meta, aborted: { at, by: options.by, why: options.reason } };
      success.push({ request_put: { key: Buffer.from(k.release(canary.release)), value: Buffer.from(JSON.stringify(aborted)) } });
    }
  }
  const txn = await client.kv.txn({ compare: [{ key: Buffer.from(k.head), target: 'Mod', result: 'Equal', mod_revision: headMod }], success, failure: [] });
  return txn.succeeded;
}

/** `hotconf rollout promote|abort`: ends the canary in progress, retrying when the head moves under it. Returns
 *  the canary that was ended. Throws E_FLEET when there is none. */
export async function finishRollout(client: Etcd3, prefix: string, action: 'promote' | 'abort', options: { by: string; reason?: string }): Promise<NonNullable<Head['canary']>> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const { head, headMod } = await readHead(client, prefix);
    if (!head) throw new EtcdError('E_FLEET', `${prefix} holds no release (push one first)`);
    if (!head.canary) throw new EtcdError('E_FLEET', `no canary in progress under ${prefix}: every instance runs release ${head.stable} (last: ${head.reason} by ${head.by})`);
    const reason = options.reason ?? (action === 'promote' ? `promote release ${head.canary.release}` : `abort release ${head.canary.release}`);
    if (await endCanary(client, prefix, head, headMod, action, { by: options.by, reason })) return head.canary;
  }
  throw new EtcdError('E_PUSH_CONFLICT', `the release head under ${prefix} kept moving; the rollout was not changed`);
}

/**
 * One look at an automatic canary: reads the head and the instances, runs {@link decideRollout}, and on abort or
 * promote moves the head (CAS). `acted` is true when this call moved it. Every canary instance may call it on a
 * timer: the one whose CAS lands decides, the others find the canary gone on their next look.
 */
export async function stepRollout(
  client: Etcd3,
  prefix: string,
  by: string,
  options: { release?: number; now?: number } = {},
): Promise<{ head: Head | undefined; decision: RolloutDecision; acted: boolean }> {
  const { head, headMod, revision } = await readHead(client, prefix);
  // `release`: only that canary (a waiter must not decide a later push's canary).
  if (!head?.canary?.auto || (options.release !== undefined && head.canary.release !== options.release)) return { head, decision: { action: 'none' }, acted: false };
  return { head, ...(await decideAndAct(client, prefix, head, headMod, await listInstances(client, prefix, revision), by, options.now)) };
}

/**
 * {@link decideRollout} on `head` (read at `headMod`) and these records; on abort or promote, {@link endCanary}
 * with the reason `auto-<action>: <why>`. `acted` is true when this call moved the head (false: nothing to do, or
 * another decider's CAS landed first). The one decision step of the pusher's wait and of the canary instances.
 */
export async function decideAndAct(
  client: Etcd3,
  prefix: string,
  head: Head,
  headMod: string,
  instances: readonly InstanceRecord[],
  by: string,
  now = Date.now(),
): Promise<{ decision: RolloutDecision; acted: boolean }> {
  const decision = decideRollout(head, instances, now);
  if (decision.action !== 'abort' && decision.action !== 'promote') return { decision, acted: false };
  const acted = await endCanary(client, prefix, head, headMod, decision.action, { by, reason: `auto-${decision.action}: ${decision.why}` });
  return { decision, acted };
}

export interface WaitOutcome {
  readonly outcome: 'promoted' | 'aborted' | 'superseded' | 'timeout';
  readonly why: string;
  /** True when this waiter moved the head (else an instance or another command did). */
  readonly byUs: boolean;
  readonly head: Head | undefined;
}

/**
 * Waits for the canary of `release` to end. While it runs with `auto`, decides as every canary instance does
 * ({@link decideRollout}) and moves the head on abort or promote. Polls every `intervalMs` (default 250 ms);
 * `onWait` hears each new reason to wait.
 */
export async function waitRollout(
  client: Etcd3,
  prefix: string,
  release: number,
  options: { by: string; timeoutMs: number; intervalMs?: number; onWait?: (why: string) => void; signal?: AbortSignal },
): Promise<WaitOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  let lastWhy = '';
  for (;;) {
    const { head } = await readHead(client, prefix);
    if (!head || head.canary?.release !== release) {
      if (head && head.stable === release) return { outcome: 'promoted', why: head.reason, byUs: false, head };
      const key = fleetKeys(prefix).release(release);
      const kv = (await client.kv.range({ key: Buffer.from(key) })).kvs[0];
      const meta = kv ? decodeJson<ReleaseMeta>(key, kv.value) : undefined;
      if (meta?.aborted) return { outcome: 'aborted', why: meta.aborted.why, byUs: false, head };
      if (head && !head.canary && head.stable < release) {
        // Ended by a decider that wrote only the head: record in the release what the head says (history shows it).
        if (kv && meta) {
          const aborted: ReleaseMeta = { ...meta, aborted: { at: head.updatedAt, by: head.by, why: head.reason } };
          await client.kv.txn({
            compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
            success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(JSON.stringify(aborted)) } }],
            failure: [],
          });
        }
        return { outcome: 'aborted', why: head.reason, byUs: false, head };
      }
      if (head?.canary) return { outcome: 'superseded', why: `release ${head.canary.release} is now the canary`, byUs: false, head };
      return { outcome: 'superseded', why: head ? `release ${head.stable} (${head.reason}) replaced it` : 'the head was removed', byUs: false, head };
    }
    const { decision, acted } = await stepRollout(client, prefix, options.by, { release });
    if (decision.action === 'abort' || decision.action === 'promote') {
      if (acted) return { outcome: decision.action === 'abort' ? 'aborted' : 'promoted', why: `auto-${decision.action}: ${decision.why}`, byUs: true, head: (await readHead(client, prefix)).head };
      continue; // someone else moved the head: look again
    }
    if (decision.action === 'wait' && decision.why !== lastWhy) {
      lastWhy = decision.why;
      options.onWait?.(decision.why);
    }
    if (Date.now() >= deadline) return { outcome: 'timeout', why: lastWhy || 'the canary is not automatic: promote or abort it', byUs: false, head };
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250));
    if (options.signal?.aborted) return { outcome: 'timeout', why: 'interrupted', byUs: false, head };
  }
}
