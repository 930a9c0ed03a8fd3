// This instance in the fleet: its record under `P.hotconf/instances/<id>` (InstanceRecord, layout.ts), written
// under a lease (TTL 10 s, kept alive by etcd3: the record is gone ~10 s after the process, at once after a
// clean close), rewritten when what it says changes and every 5 s (seenAt). And, while this instance is in an
// `--auto` canary, the rollout's referee: every second it reads the head and the records, applies
// decideRollout() and, on abort or promote, moves the head by compare-and-swap (only one referee wins; the
// others see the head moved).
import os from 'node:os';
import type { Etcd3, IRangeResponse, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { settleWithin } from '../../async.js';
import type { FleetStatus } from '../index.js';
import { prefixEnd } from './client.js';
import { decodeHead, fleetKeys, type Head, type InstanceRecord, type InstanceState } from './layout.js';
import { decideAndAct, recordsOf } from './rollout.js';

export const LEASE_TTL_S = 10;
export const HEARTBEAT_MS = 5000;
export const REFEREE_MS = 1000;

/** The instance id when none is given: the pod's name under Kubernetes, else the host name. */
export function defaultInstanceId(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOTCONF_INSTANCE_ID) return env.HOTCONF_INSTANCE_ID;
  if (env.POD_NAME) return env.POD_NAME;
  if (env.KUBERNETES_SERVICE_HOST && env.HOSTNAME) return env.HOSTNAME;
  return os.hostname();
}

export interface RecordFields {
  release: number | undefined;
  target: number | undefined;
  state: InstanceState;
  errors: number;
  appliedAt: number | undefined;
  staleSince: number | undefined;
}

/** The most records a referee reads one by one (beyond: the whole range); etcd allows 128 operations a txn. */
const REFEREE_MAX_IDS = 100;

/**
 * The head and the live records, at one revision: every record, or only those of `ids` (a referee needs the
 * canary's, not a fleet's worth every second); undefined head when the prefix is not in release mode.
 */
export async function readFleet(client: Etcd3, prefix: string, ids?: readonly string[]): Promise<{ head: Head | undefined; headRevision: string | undefined; instances: InstanceRecord[] }> {
  const k = fleetKeys(prefix);
  const records =
    ids !== undefined && ids.length <= REFEREE_MAX_IDS
      ? ids.map((id) => ({ request_range: { key: Buffer.from(k.instance(id)) } }))
      : [{ request_range: { key: Buffer.from(k.instances), range_end: prefixEnd(k.instances) } }];
  const res = await client.kv.txn({ compare: [], success: [{ request_range: { key: Buffer.from(k.head) } }, ...records], failure: [] });
  const [h, ...i] = res.responses.map((r) => (r.response_range as IRangeResponse | undefined)?.kvs ?? []);
  const headKv = h?.[0];
  return { head: headKv ? decodeHead(k.head, headKv.value) : undefined, headRevision: headKv?.mod_revision, instances: recordsOf(i.flat()) };
}

/** What GET /v1/fleet shows: the head and the records (in the order given: recordsOf sorts them by id), undefined fields as null. */
export function fleetStatusOf(head: Head, instances: readonly InstanceRecord[]): FleetStatus {
  return {
    stable: head.stable,
    canary: head.canary ? { release: head.canary.release, ids: head.canary.ids, auto: head.canary.auto ?? null, startedAt: head.canary.startedAt } : null,
    instances: instances.map((r) => ({
        id: r.id,
        release: r.release ?? null,
        target: r.target ?? null,
        state: r.state,
        errors: r.errors,
        appliedAt: r.appliedAt ?? null,
        seenAt: r.seenAt,
        startedAt: r.startedAt,
        staleSince: r.staleSince ?? null,
        host: r.host,
        pid: r.pid,
        hotconf: r.hotconf,
      })),
  };
}

export class InstanceRegistry {
  readonly id: string;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly version: string;
  private readonly fields: RecordFields = { release: undefined, target: undefined, state: 'ok', errors: 0, appliedAt: undefined, staleSince: undefined };
  private readonly startedAt = Date.now();
  private lease: Lease | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private referee: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  private lastWriteError: string | undefined;
  private deciding = false;
  /** The canary's ids while this instance referees it. */
  private canaryIds: readonly string[] = [];

  constructor(client: Etcd3, prefix: string, id: string, version: string, log: Logger) {
    this.client = client;
    this.prefix = prefix;
    this.id = id;
    this.version = version;
    this.log = log;
  }

  get record(): Readonly<RecordFields> {
    return this.fields;
  }

  /** Starts the heartbeat and writes the record (idempotent). */
  start(): void {
    if (this.heartbeat || this.closed) return;
    this.heartbeat = setInterval(() => this.write(), HEARTBEAT_MS);
    this.heartbeat.unref();
    this.write();
  }

  /** Stops the heartbeat and removes the record (the prefix left release mode); start() registers again. */
  stop(): void {
    if (!this.heartbeat) return;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const lease = this.lease;
    this.lease = undefined;
    void (async () => {
      await this.writing;
      await lease?.revoke().catch(() => undefined);
    })();
  }

  /** Changes what the record says; written now if anything changed. */
  update(fields: { [K in keyof RecordFields]?: RecordFields[K] | undefined }): void {
    let changed = false;
    for (const [key, value] of Object.entries(fields) as Array<[keyof RecordFields, unknown]>) {
      if (this.fields[key] !== value) {
        (this.fields as unknown as Record<string, unknown>)[key] = value;
        changed = true;
      }
    }
    if (changed) this.write();
  }

  /** Follows the head: referee while this instance is in an `--auto` canary. */
  follow(head: Head | undefined): void {
    const referee = head?.canary?.auto !== undefined && head.canary.ids.includes(this.id);
    this.canaryIds = referee ? head.canary.ids : [];
    if (referee && !this.referee && !this.closed) {
      this.referee = setInterval(() => void this.decide(), REFEREE_MS);
      this.referee.unref();
    } else if (!referee && this.referee) {
      clearInterval(this.referee);
      this.referee = undefined;
    }
  }

  /** Asks the referee to look now (after this instance applied or refused a release). */
  kick(): void {
    if (this.referee) void this.decide();
  }

  /** One look at the rollout: decideRollout() on the head and the records; abort or promote by CAS. */
  async decide(): Promise<void> {
    if (this.deciding || this.closed) return;
    this.deciding = true;
    try {
      await this.writing; // our own record first: the decision must see what this instance just did
      const ids = this.canaryIds;
      const { head, headRevision, instances } = await readFleet(this.client, this.prefix, ids);
      // Decided on the records of the canary read: a head whose canary moved meanwhile waits for the next look.
      if (!head?.canary?.auto || headRevision === undefined || head.canary.ids.join('\0') !== ids.join('\0')) return;
      // The writer's end of a canary: the head's CAS, and an aborted release marked so in its meta (history).
      const { decision: d, acted } = await decideAndAct(this.client, this.prefix, head, headRevision, instances, `instance ${this.id}`);
      if (acted && (d.action === 'abort' || d.action === 'promote')) this.log.warn({ release: head.canary.release, action: d.action, why: d.why }, `canary release ${head.canary.release} ${d.action === 'abort' ? 'aborted' : 'promoted'} by this instance`);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'rollout check failed; next try in a second');
    } finally {
      this.deciding = false;
    }
  }

  /** Writes the record (coalesced: one write in flight, one more if something changed meanwhile). */
  private write(): void {
    if (this.closed || !this.heartbeat) return;
    if (this.writing) {
      this.dirty = true;
      return;
    }
    this.writing = (async () => {
      do {
        this.dirty = false;
        await this.put();
      } while (this.dirty && !this.closed);
    })().finally(() => (this.writing = undefined));
  }

  private async put(): Promise<void> {
    if (!this.heartbeat) return;
    const { staleSince, ...fields } = this.fields;
    const record: InstanceRecord = { id: this.id, ...fields, ...(staleSince === undefined ? {} : { staleSince }), seenAt: Date.now(), startedAt: this.startedAt, host: os.hostname(), pid: process.pid, hotconf: this.version };
    try {
      if (!this.lease) {
        const lease = this.client.lease(LEASE_TTL_S);
        lease.on('lost', (err) => {
          if (this.lease === lease) this.lease = undefined;
          if (!this.closed) this.log.debug({ err: err.message }, 'instance lease lost; a new one is taken at the next write');
        });
        this.lease = lease;
      }
      await this.lease.put(fleetKeys(this.prefix).instance(this.id)).value(JSON.stringify(record));
      if (this.lastWriteError !== undefined) this.log.info({ id: this.id }, 'instance record written again');
      this.lastWriteError = undefined;
    } catch (err) {
      const msg = (err as Error).message;
      if (this.lastWriteError === undefined) this.log.debug({ err: msg, id: this.id }, 'instance record not written (etcd unreachable?); retrying with the heartbeat');
      this.lastWriteError = msg;
      this.lease = undefined;
    }
  }

  /** Stops the heartbeat and the referee; revokes the lease, so the record goes at once (bounded wait). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearInterval(this.referee);
    this.referee = undefined;
    await settleWithin(this.writing, 1000);
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await settleWithin(lease.revoke().catch(() => undefined), 1000);
  }
}
