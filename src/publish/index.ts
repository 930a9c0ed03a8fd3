// The sidecar's hand-off to applications that read files and cannot link the library: the role configmap-reload
// and consul-template play, except that the application only ever sees validated config. Each committed version
// is written into a fresh hidden directory and swapped in with one rename of the `..data` symlink (the Kubernetes
// ConfigMap layout), then the application is told: webhook, signal and/or command. It runs as an ordinary store
// subscriber, so a slow disk or a dead receiver never delays a commit; failures are logged and reported, never fatal.
// This file runs the two in order, one version at a time; writer.ts writes the directory, notifiers.ts tells the app.
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { settleWithin } from '../async.js';
import type { Hotconf } from '../hotconf.js';
import { isInside } from '../names.js';
import type { ConfigEntry, Logger, Snapshot, Unsubscribe } from '../store/index.js';
import { describe, fail } from './errors.js';
import { checkNotify, deliver, describeTarget, Lane, userAgent, type Delivery, type Notice, type NotifyOptions, type Target } from './notifiers.js';
import { checkPublish, prepareDir, resolveGroup, writeVersion, type PublishOptions, type ResolvedPublish } from './writer.js';

export type { CommandOptions, NotifyOptions, SignalOptions, WebhookOptions } from './notifiers.js';
export type { PublishOptions } from './writer.js';

export type NotifyKind = 'publish' | 'webhook' | 'signal' | 'command';

/** Where one target (or the publish step) stands, as GET /v1/status shows it under `notify` (null: not known yet). */
export interface NotifyTargetStatus {
  readonly kind: NotifyKind;
  /** The webhook URL (no credentials, no query), the signal and pid (file), the command's program, the dir. */
  readonly target: string;
  /** The version of the last final result (after retries); null before the first. */
  readonly version: number | null;
  /** `ok`, or `failed` (the reason says why: `HTTP 500: <the start of the answer>`, `connect ECONNREFUSED …`). */
  readonly result: 'ok' | 'failed' | null;
  /** When that result came, ISO 8601. */
  readonly at: string | null;
  readonly reason: string | null;
  /** The last version the target acknowledged (published, for `publish`). */
  readonly lastOkVersion: number | null;
  /** The version being delivered now (retrying, or waiting out the start-up grace); null when idle. */
  readonly delivering: number | null;
}

export interface PublisherOptions {
  /** Write every version into a directory. Default: no publishing, notify only. */
  publish?: PublishOptions;
  /** Targets told after each publish (and at start). Default none. */
  notify?: NotifyOptions;
  /** pino logger; a child `{ module: 'publish' }` is used. Default: silent. */
  logger?: Logger;
  /** Called with each final outcome (after retries) for metrics. A notice replaced by a newer one before it
   *  could be delivered has no outcome of its own: the newer one carries its changes. */
  onResult?: (kind: NotifyKind, ok: boolean, version: number, reason?: string) => void;
  /** How long close() waits for a publish or notice in flight before aborting it, in ms. Default 5000. */
  closeTimeoutMs?: number;
}

export interface Publisher extends AsyncDisposable {
  /** Replaces the notify targets while running (hot reload of the daemon's settings). Unchanged targets keep
   *  their state; a new target hears of the next version. Throws E_OPTIONS (targets untouched) on bad options. */
  setNotify(notify: NotifyOptions | undefined): void;
  /** Resolves when the current version has been published (or has failed to) and every notice for it settled. */
  idle(): Promise<void>;
  /** The publish step and each notify target: last version, result, when, why. */
  status(): NotifyTargetStatus[];
  /** Idempotent: unsubscribes, lets work in flight finish (bounded by closeTimeoutMs), drops pending retries. */
  close(): Promise<void>;
}

const PUBLISH_RETRY_MS = { first: 1000, max: 60_000 };
/** Default of `notify.startupGraceMs`: an application started with its sidecar listens within a minute. */
const DEFAULT_STARTUP_GRACE_MS = 60_000;

/** Publishes the current snapshot at once (and notifies, so that an app started before the daemon catches up),
 *  then every committed version. Rejects with E_OPTIONS on bad options or an unusable `publish.dir`. */
export async function startPublisher(
  hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>,
  options: PublisherOptions,
): Promise<Publisher> {
  let publish = options.publish === undefined ? undefined : checkPublish(options.publish);
  const targets = checkNotify(options.notify);
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  if (!(closeTimeoutMs >= 0)) fail('closeTimeoutMs must be a number >= 0');
  const log = (options.logger ?? pino({ level: 'silent' })).child({ module: 'publish' });
  const ua = await userAgent();
  let versions: string[] = [];
  if (publish) {
    for (const entry of hot.snapshot().configs.values()) {
      if (path.isAbsolute(entry.path) && isInside(path.resolve(entry.path), path.resolve(publish.dir))) fail(`publish dir ${publish.dir} holds the config ${entry.path}: it would feed itself`);
    }
    publish = await resolveGroup(publish);
    versions = await prepareDir(publish, log);
  }
  const graceMs = options.notify?.startupGraceMs ?? DEFAULT_STARTUP_GRACE_MS;
  const publisher = new Runner(hot, { publish, versions, log, ua, closeTimeoutMs, onResult: options.onResult, graceMs });
  await publisher.start(targets);
  return publisher;
}

class Runner implements Publisher {
  readonly #hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>;
  readonly #publish: ResolvedPublish | undefined;
  readonly #log: Logger;
  readonly #ua: string;
  readonly #closeTimeoutMs: number;
  readonly #onResult: PublisherOptions['onResult'];
  /** Published version directories, oldest first; the last one is what `..data` points to. */
  readonly #versions: string[];
  #lanes: Lane[] = [];
  /** Lanes replaced by setNotify, finishing the attempt they have in flight. */
  readonly #retired = new Set<Lane>();
  #unsubscribe: Unsubscribe | undefined;
  /** Publish steps run one at a time, in this chain. */
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  /** The last snapshot a publish was attempted for, and whether that attempt failed (then it is retried). */
  #attempted: Snapshot | undefined;
  #failed = false;
  /** The last snapshot published (or, without publishing, handed to the lanes): what a new target starts from. */
  #published: Snapshot | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = PUBLISH_RETRY_MS.first;
  /** The publish step's last result, for status(). */
  #publishLast: { version: number; ok: boolean; at: number; reason: string | undefined } | undefined;
  /** When the start-up grace ends (ms since the epoch): measured from the publisher's start. */
  readonly #startedAt = Date.now();
  #graceMs: number;
  readonly #waiters = new Set<() => void>();
  /** Aborted when close() has waited long enough: cuts webhook requests and commands in flight. */
  readonly #hardStop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(
    hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>,
    o: { publish: ResolvedPublish | undefined; versions: string[]; log: Logger; ua: string; closeTimeoutMs: number; onResult: PublisherOptions['onResult']; graceMs: number },
  ) {
    this.#graceMs = o.graceMs;
    this.#hot = hot;
    this.#publish = o.publish;
    this.#versions = o.versions;
    this.#log = o.log;
    this.#ua = o.ua;
    this.#closeTimeoutMs = o.closeTimeoutMs;
    this.#onResult = o.onResult;
  }

  async start(targets: readonly Target[]): Promise<void> {
    this.#lanes = this.#makeLanes(targets, new Map());
    // Subscribe before reading the snapshot, so that no commit falls between the two.
    this.#unsubscribe = this.#hot.onConfigChange(() => this.#enqueue());
    await this.#enqueue();
  }

  setNotify(notify: NotifyOptions | undefined): void {
    const targets = checkNotify(notify);
    if (this.#closing) return;
    this.#graceMs = notify?.startupGraceMs ?? DEFAULT_STARTUP_GRACE_MS;
    const old = this.#lanes;
    this.#lanes = this.#makeLanes(targets, this.#published?.configs ?? new Map(), old);
    for (const lane of old.filter((l) => !this.#lanes.includes(l))) {
      lane.stop();
      if (!lane.idle) this.#retired.add(lane);
    }
    this.#log.info({ targets: this.#lanes.map((l) => l.target.kind) }, 'notify targets set');
  }

  async idle(): Promise<void> {
    while (!this.#isIdle()) await new Promise<void>((resolve) => this.#waiters.add(resolve));
  }

  status(): NotifyTargetStatus[] {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const out: NotifyTargetStatus[] = [];
    const p = this.#publishLast;
    if (this.#publish) {
      out.push({
        kind: 'publish',
        target: this.#publish.dir,
        version: p?.version ?? null,
        result: p === undefined ? null : p.ok ? 'ok' : 'failed',
        at: iso(p?.at),
        reason: p?.reason ?? null,
        lastOkVersion: this.#published?.version ?? null,
        delivering: null,
      });
    }
    for (const lane of this.#lanes) {
      const last = lane.last;
      out.push({
        kind: lane.target.kind,
        target: describeTarget(lane.target),
        version: last?.version ?? null,
        result: last === undefined ? null : last.outcome === 'ok' ? 'ok' : 'failed',
        at: iso(last?.at),
        reason: last?.reason ?? null,
        lastOkVersion: lane.lastOkVersion ?? null,
        delivering: lane.delivering ?? null,
      });
    }
    return out;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#unsubscribe?.();
    clearTimeout(this.#retryTimer);
    const lanes = [...this.#lanes, ...this.#retired];
    for (const lane of lanes) lane.stop();
    const work = Promise.allSettled([this.#queue, ...lanes.map((l) => l.done)]);
    if (!(await settleWithin(work, this.#closeTimeoutMs))) {
      this.#log.warn({ timeoutMs: this.#closeTimeoutMs }, 'close: work still in flight, aborting it');
      this.#hardStop.abort();
    }
    this.#kick();
  }

  #isIdle(): boolean {
    if (this.#closing) return true;
    if (this.#queued > 0 || ![...this.#lanes, ...this.#retired].every((l) => l.idle)) return false;
    const done = this.#attempted;
    const now = this.#hot.snapshot();
    // Configs equal under a higher version: the store skipped us (a name added and removed again), nothing to do.
    return done !== undefined && (now.version <= done.version || sameConfigs(done, now));
  }

  /** Wakes idle() waiters to look again. */
  #kick(): void {
    for (const resolve of this.#waiters) resolve();
    this.#waiters.clear();
  }

  /** The one place publish steps go: serialized, caught, logged. The store awaits it, so it coalesces for us. */
  #enqueue(): Promise<void> {
    this.#queued++;
    this.#queue = this.#queue
      .then(() => (this.#closing ? undefined : this.#step()))
      .catch((err: unknown) => this.#log.error({ err }, 'publish step failed'))
      .finally(() => {
        this.#queued--;
        this.#kick();
      });
    return this.#queue;
  }

  /** Publishes the latest snapshot (always the latest: a burst publishes fewer versions but ends on the last),
   *  then hands it to every notify lane. A failed publish notifies no one and is retried. */
  async #step(): Promise<void> {
    const snap = this.#hot.snapshot();
    if (snap === this.#attempted && !this.#failed) return;
    let ok = true;
    if (this.#publish) {
      const t0 = performance.now();
      let reason: string | undefined;
      try {
        await writeVersion(snap, this.#publish, this.#versions, this.#log);
        this.#log.info({ version: snap.version, configs: snap.configs.size, ms: Math.round(performance.now() - t0) }, 'published');
      } catch (err) {
        ok = false;
        reason = describe(err);
        this.#log.error({ err, version: snap.version, dir: this.#publish.dir }, 'publish failed');
      }
      this.#publishLast = { version: snap.version, ok, at: Date.now(), reason };
      this.#report('publish', { outcome: ok ? 'ok' : 'failed', ...(reason === undefined ? {} : { reason }) }, snap.version);
    }
    this.#attempted = snap;
    this.#failed = !ok;
    clearTimeout(this.#retryTimer);
    if (ok) {
      this.#published = snap;
      this.#retryMs = PUBLISH_RETRY_MS.first;
      for (const lane of this.#lanes) lane.push(snap);
    } else {
      // The disk may come back before the next commit does: try again on our own, backing off.
      this.#retryTimer = setTimeout(() => void this.#enqueue(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, PUBLISH_RETRY_MS.max);
    }
  }

  #makeLanes(targets: readonly Target[], base: ReadonlyMap<string, ConfigEntry>, old: readonly Lane[] = []): Lane[] {
    return targets.map(
      (target) =>
        old.find((lane) => isDeepStrictEqual(lane.target, target)) ??
        new Lane(target, base, {
          deliver: (notice, wake) => this.#deliver(target, notice, wake),
          report: (result, version) => this.#report(target.kind, result, version),
          settled: (lane) => {
            if (lane.idle) this.#retired.delete(lane);
            this.#kick();
          },
          log: this.#log,
        }),
    );
  }

  #deliver(target: Target, notice: Notice, wake: AbortSignal): Promise<Delivery> {
    const log = this.#log.child({ notify: target.kind, version: notice.version });
    const graceUntil = this.#startedAt + this.#graceMs;
    return deliver(target, notice, { wake, hard: this.#hardStop.signal, log, ua: this.#ua, publishDir: this.#publish?.dir, graceUntil });
  }

  #report(kind: NotifyKind, result: Delivery, version: number): void {
    try {
      this.#onResult?.(kind, result.outcome === 'ok', version, result.reason);
    } catch (err) {
      this.#log.error({ err }, 'onResult failed');
    }
  }
}

function sameConfigs(a: Snapshot, b: Snapshot): boolean {
  if (a.configs.size !== b.configs.size) return false;
  for (const [name, entry] of a.configs) if (b.configs.get(name)?.hash !== entry.hash) return false;
  return true;
}
