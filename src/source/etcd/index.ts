// The etcd source (DESIGN.md "Sources"): the keys under a prefix become batches, as directory events do for
// files. The start is revision-consistent (one range read at revision R, the watch from R+1), one etcd revision
// is never split across batches, a lost connection resumes from the last revision seen, and a compacted
// revision (or a cluster whose revision went backwards) turns into one full re-read. etcd3's own watcher
// resumes from the revision of its last *create* response, which can skip events that were still being
// replayed when the stream broke, and it reuses a stale auth token on a new stream: so this module owns the
// reconnect loop and only lets etcd3 carry one watch at a time. It keeps a mirror of the prefix, which the
// pipeline reads configs from.
import type { Etcd3, IKeyValue, IWatchResponse } from 'etcd3';
import type { Logger } from 'pino';
import { settleWithin } from '../../async.js';
import { HotconfError, NameConflictError } from '../../errors.js';
import { candidatesOf, configNameOf, formatOf } from '../../names.js';
import type { EntryRead, ReadLimits, Source, SourceBatch } from '../index.js';
import { BatchQueue, type QueuedBatch } from '../queue.js';
import {
  describeEtcdError,
  displayKey,
  ETCD_DEFAULTS,
  etcdClient,
  normalizePrefix,
  type EtcdConnectionState,
  type EtcdOptions,
  type EtcdSourceStatus,
} from './client.js';

export * from './client.js';
export { pushEntries, PushConflictError, type PushPlan, type PushResult } from './push.js';

const isCompaction = (err: unknown) => err instanceof Error && /compacted/i.test(err.message);

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A key's new bytes, or null when it was deleted. */
type KeyChange = Uint8Array | null;

/**
 * The keys under `prefix` as a {@link Source} (single consumer). `open()` reads the prefix once (the initial
 * batch, {@link EtcdSource.initial}); iteration yields what changed after it. The
 * connection is kept by a loop owned here: reconnect with backoff and jitter, resume after the last revision
 * seen. `close()` (or breaking out of the loop) cancels the watch and closes the client.
 */
export class EtcdSource implements Source<EtcdSourceStatus> {
  readonly initial: SourceBatch;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly timeoutMs: number;
  /** Resolved when the first watch attempt after open() is decided (connected or not). */
  private firstAttempt: (() => void) | undefined;
  private revision: bigint;
  private clusterId: string;
  private state: EtcdConnectionState = 'connecting';
  private since = Date.now();
  private lastError: string | undefined;
  private resyncs = 0;
  /** The next batch for the consumer: revisions coalesced per key while it is busy, never a revision split. */
  private readonly queue = new BatchQueue<KeyChange>({ debounceMs: 0 });
  /** Every key under the prefix and its bytes, as of the last batch handed to the consumer. */
  private readonly keys = new Map<string, Uint8Array>();
  /** Keys with an unknown extension, logged once each. */
  private readonly ignoredKeys = new Set<string>();
  /** Keys (hex) ignored for not being valid UTF-8, each warned about once. */
  private readonly badKeys = new Set<string>();
  private closed = false;
  private closing: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  /** Resolves the wait of the loop (a broken watch, a resync request, close). */
  private interrupt: ((why: 'lost' | 'canceled' | 'resync' | 'close') => void) | undefined;
  private resyncRequested = false;

  private constructor(client: Etcd3, options: EtcdOptions, logger: Logger, initial: { revision: bigint; clusterId: string; kvs: IKeyValue[] }) {
    this.client = client;
    this.prefix = normalizePrefix(options.prefix);
    this.endpoints = [...options.endpoints];
    this.log = logger;
    this.minMs = options.reconnectMinMs ?? ETCD_DEFAULTS.reconnectMinMs;
    this.maxMs = Math.max(this.minMs, options.reconnectMaxMs ?? ETCD_DEFAULTS.reconnectMaxMs);
    this.timeoutMs = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
    this.revision = initial.revision;
    this.clusterId = initial.clusterId;
    this.initial = this.toSourceBatch({
      seq: 0,
      items: new Map(initial.kvs.flatMap((kv) => this.keyOf(kv.key, kv.value))),
      reasons: new Set(['request']),
      firstHintAt: performance.now(),
      full: true,
      overflowed: false,
    });
  }

  /** Connects, reads the whole prefix at one revision and starts watching after it. Rejects with an
   *  {@link EtcdError} (`E_SOURCE_UNAVAILABLE`, `E_SOURCE_AUTH`) when etcd cannot be read. */
  static async open(options: EtcdOptions, logger: Logger): Promise<EtcdSource> {
    const client = await etcdClient(options);
    let res;
    try {
      res = await client.getAll().prefix(normalizePrefix(options.prefix)).exec();
    } catch (err) {
      client.close();
      throw describeEtcdError(err, options.endpoints);
    }
    const source = new EtcdSource(client, options, logger, {
      revision: BigInt(res.header.revision),
      clusterId: res.header.cluster_id,
      kvs: res.kvs,
    });
    logger.info({ revision: res.header.revision, keys: res.kvs.length, prefix: options.prefix }, 'etcd prefix read');
    // Ready means watching: wait for the first watch to be established (or to fail, then the loop retries).
    const decided = new Promise<void>((resolve) => (source.firstAttempt = resolve));
    source.loop = source.run();
    await decided;
    return source;
  }

  status(): EtcdSourceStatus {
    return {
      kind: 'etcd',
      endpoints: this.endpoints,
      prefix: this.prefix,
      state: this.state,
      connected: this.state === 'connected',
      revision: this.revision.toString(),
      since: this.since,
      lastError: this.state === 'connected' ? undefined : this.lastError,
      resyncs: this.resyncs,
    };
  }

  /** Asks for a full re-read of the prefix; resolves once the consumer has processed it. Rejects with an
   *  {@link EtcdError} when etcd cannot be read now (the last good config stays; nothing waits for etcd). */
  resync(): Promise<void> {
    if (this.closed) return Promise.reject(new HotconfError('E_CLOSED', 'the etcd source is closed'));
    return new Promise<void>((resolve, reject) => {
      this.resyncRequested = true;
      this.resyncWaiters.push({ resolve, reject });
      this.interrupt?.('resync');
    });
  }

  private readonly resyncWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];

  async *[Symbol.asyncIterator](): AsyncIterator<SourceBatch> {
    try {
      for await (const batch of this.queue) yield this.toSourceBatch(batch);
    } finally {
      await this.close();
    }
  }

  /** Applies a batch to the mirror of the prefix and names the configs it touched (a full batch: every name,
   *  old and new). The revision is the last one seen: the queue holds exactly the events up to it. */
  private toSourceBatch(batch: QueuedBatch<KeyChange>): SourceBatch {
    const names = new Set<string>();
    const touch = (key: string) => {
      const name = this.nameOfKey(key);
      if (name !== undefined) names.add(name);
    };
    if (batch.full) {
      for (const key of this.keys.keys()) touch(key);
      this.keys.clear();
    }
    for (const [key, bytes] of batch.items) {
      if (bytes === null) this.keys.delete(key);
      else this.keys.set(key, bytes);
      touch(key);
    }
    return {
      seq: batch.seq,
      names,
      full: batch.full,
      // Schemas are files deployed with the application, not watched here: the pipeline reads them all with
      // the initial listing and on reload() (reason 'request').
      reasons: batch.reasons,
      firstHintAt: batch.firstHintAt,
      revision: this.revision.toString(),
    };
  }

  /** The one key behind a config name in the mirror: the same limits as a file. */
  read(name: string, limits: ReadLimits): Promise<EntryRead> {
    const present = candidatesOf(this.prefix + name).filter((k) => this.keys.has(k));
    if (present.length === 0) return Promise.resolve({ kind: 'missing' });
    const shown = present.map(displayKey);
    if (present.length > 1) {
      const err = new NameConflictError('E_DUPLICATE_NAME', { file: shown[0]! }, `config '${name}' is defined by ${shown.length} keys (${shown.join(', ')}); keep one`);
      return Promise.resolve({ kind: 'error', shown: shown[0], errors: [err] });
    }
    const key = present[0]!;
    const file = shown[0]!;
    // The mirror keeps its bytes: the pipeline gets a copy it may move to its parser thread (over-large
    // values are refused by the pipeline, from the length alone).
    const bytes = this.keys.get(key)!;
    const handed = bytes.byteLength > limits.maxFileBytes ? bytes : Buffer.from(bytes);
    return Promise.resolve({ kind: 'bytes', bytes: handed, format: formatOf(key) ?? 'yaml', path: file, shown: file });
  }

  /** etcd batches are processed as they arrive; the pipeline is alive when it waits for the next one. */
  ping(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * A key and its change, or nothing for a key that is not valid UTF-8 (ignored, with one warning per key): decoded
   * lossily, two distinct keys would become one config, and deleting one would remove the config the other holds.
   */
  private keyOf(raw: Buffer, change: KeyChange): Array<[string, KeyChange]> {
    try {
      return [[STRICT_UTF8.decode(raw), change]];
    } catch {
      const hex = raw.toString('hex');
      if (!this.badKeys.has(hex) && this.badKeys.size < 10_000) {
        this.badKeys.add(hex);
        this.log.warn({ keyHex: hex }, 'etcd key ignored: not valid UTF-8 (two such keys could not be told apart)');
      }
      return [];
    }
  }

  /** `<prefix>db/primary.json` → `db/primary`, by the file naming rules; undefined (logged once) otherwise. */
  private nameOfKey(key: string): string | undefined {
    const name = key.startsWith(this.prefix) ? configNameOf(key.slice(this.prefix.length)) : undefined;
    if (name !== undefined) return name;
    if (key.startsWith(this.prefix) && !this.ignoredKeys.has(key) && this.ignoredKeys.size < 10_000) {
      this.ignoredKeys.add(key);
      this.log.warn({ key: displayKey(key) }, 'etcd key ignored: not <name>.yaml, .yml or .json under the prefix');
    }
    return undefined;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.setState('closed', undefined);
      this.interrupt?.('close');
      this.queue.close();
      // A request in flight to an unreachable etcd would hold close() for its whole deadline: closing the
      // client ends it.
      await settleWithin(this.loop, 1000);
      this.client.close();
      await this.loop;
      for (const w of this.resyncWaiters.splice(0)) w.reject(new HotconfError('E_CLOSED', 'the etcd source is closed'));
      this.log.debug('etcd source closed');
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the connection loop ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    let attempt = 0;
    let full = false;
    while (!this.closed) {
      try {
        if (full || this.resyncRequested) {
          await this.readAll(this.resyncRequested ? 'request' : 'error');
          full = false;
        } else {
          // A unary call first: it proves etcd answers, renews an auth token that a restarted etcd no longer
          // knows (etcd3 only does that for unary calls), and shows a cluster that was reset or replaced.
          const probe = await this.client.kv.range({ key: Buffer.from(this.prefix), count_only: true });
          if (probe.header.cluster_id !== this.clusterId || BigInt(probe.header.revision) < this.revision) {
            this.log.warn({ clusterId: probe.header.cluster_id, revision: probe.header.revision, seen: this.revision.toString() }, 'etcd cluster was reset or replaced; reading the prefix again');
            full = true;
            continue;
          }
        }
        if (this.closed) break;
        const why = await this.watchOnce(() => {
          attempt = 0;
          this.setState('connected', undefined);
        });
        if (why === 'close') break;
        if (why === 'resync') continue;
        if (why === 'canceled') {
          // etcd canceled the watch: a compacted start revision (etcd3 drops the compact_revision it came
          // with) or a revoked permission. A full re-read is right in every case, and says which.
          this.log.warn({ err: this.lastError, revision: this.revision.toString() }, 'etcd canceled the watch (compacted past its revision?); reading the prefix again');
          full = true;
          continue;
        }
        this.setState('disconnected', this.lastError);
        this.log.warn({ err: this.lastError, revision: this.revision.toString() }, 'etcd connection lost; serving the last good config, reconnecting');
      } catch (err) {
        if (this.closed) break;
        if (isCompaction(err)) {
          full = true;
          continue;
        }
        const e = describeEtcdError(err, this.endpoints);
        if (this.state !== 'disconnected' || this.lastError !== e.message) {
          this.log.warn({ err: e.message, attempt }, 'etcd unreachable; serving the last good config, retrying');
        }
        this.setState('disconnected', e.message);
      }
      // Full jitter over an exponential ceiling: a fleet that lost etcd together does not come back in step.
      const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(attempt, 20));
      attempt++;
      await this.sleep(ceiling / 2 + Math.random() * (ceiling / 2));
    }
  }

  /**
   * One watch from the revision after the last seen, until it breaks. etcd3's own resume is not used: the
   * watcher is dropped on the first 'disconnected', and the loop above creates the next one.
   */
  private async watchOnce(onConnected: () => void): Promise<'lost' | 'canceled' | 'resync' | 'close'> {
    const w = this.client
      .watch()
      .prefix(this.prefix)
      .startRevision((this.revision + 1n).toString())
      .watcher();
    let canceledByServer = false;
    let timer: NodeJS.Timeout | undefined;
    const why = await new Promise<'lost' | 'canceled' | 'resync' | 'close'>((resolve) => {
      this.interrupt = resolve;
      w.on('data', (res: IWatchResponse) => this.onData(res));
      w.on('connected', () => {
        clearTimeout(timer);
        onConnected();
      });
      w.on('disconnected', (err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        resolve('lost');
      });
      w.on('error', (err: unknown) => {
        // etcd3 has already dropped a watcher that emits 'error' (canceled by the server).
        canceledByServer = true;
        this.lastError = err instanceof Error ? err.message : String(err);
        resolve('canceled');
      });
      // A stream that never says yes or no (etcd3 would retry it silently): counts as lost.
      timer = setTimeout(() => {
        this.lastError = `no answer to the watch request within ${this.timeoutMs} ms`;
        resolve('lost');
      }, this.timeoutMs);
      if (this.closed) resolve('close');
      else if (this.resyncRequested) resolve('resync');
    });
    clearTimeout(timer);
    this.interrupt = undefined;
    w.removeAllListeners('data');
    if (!canceledByServer) {
      // cancel() waits for etcd to confirm; a dead stream never does (etcd3 detaches it on reconnect anyway).
      await settleWithin(w.cancel(), 1000);
    }
    return why;
  }

  /** Waits `ms`, or less if the source is closed or a resync is requested. */
  private async sleep(ms: number): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.interrupt = undefined;
        resolve();
      }, ms);
      this.interrupt = () => {
        clearTimeout(timer);
        this.interrupt = undefined;
        resolve();
      };
    });
  }

  /** One range read of the whole prefix: the next batch is `full`. */
  private async readAll(reason: 'request' | 'error'): Promise<void> {
    const waiters = this.resyncWaiters.splice(0);
    this.resyncRequested = false;
    let res;
    try {
      res = await this.client.getAll().prefix(this.prefix).exec();
    } catch (err) {
      // A requested re-read fails now (reload() says why); a compaction's re-read is retried by the loop.
      const e = describeEtcdError(err, this.endpoints);
      for (const w of waiters) w.reject(e);
      throw err;
    }
    this.resyncs++;
    this.revision = BigInt(res.header.revision);
    this.clusterId = res.header.cluster_id;
    this.log.info({ revision: res.header.revision, keys: res.kvs.length, reason }, 'etcd prefix read again');
    const entries = res.kvs.flatMap((kv) => this.keyOf(kv.key, kv.value));
    if (waiters.length === 0) {
      this.queue.add(entries, reason, { urgent: true, replace: true });
    } else {
      void this.queue.request(entries, reason, { replace: true }).then(() => {
        for (const w of waiters) w.resolve();
      });
    }
  }

  /** Events grouped by revision, in order; each revision lands whole in the pending batch. */
  private onData(res: IWatchResponse): void {
    // etcd3 rethrows a listener's exception outside any stream: this must never throw.
    try {
      if (res.events.length === 0) return; // progress notification: says nothing about our keys
      // Already read (a replay overlapping a full read or an earlier stream): no duplicate.
      const fresh = res.events.filter((ev) => BigInt(ev.kv.mod_revision) > this.revision);
      // The events of one response are complete revisions (etcd never splits a revision without `fragment`).
      const last = res.events[res.events.length - 1]!;
      const top = BigInt(last.kv.mod_revision);
      if (top > this.revision) this.revision = top;
      if (fresh.length === 0) return;
      const entries = fresh.flatMap((ev) => this.keyOf(ev.kv.key, ev.type === 'Delete' ? null : ev.kv.value));
      this.queue.add(entries, 'event', { urgent: true });
    } catch (err) {
      this.log.error({ err }, 'etcd watch event could not be handled; reading the prefix again');
      this.resyncRequested = true;
      this.interrupt?.('resync');
    }
  }

  private setState(state: EtcdConnectionState, error: string | undefined): void {
    this.firstAttempt?.();
    this.firstAttempt = undefined;
    if (this.state === state && this.lastError === error) return;
    if (this.state === 'closed') return;
    const wasDown = this.state === 'disconnected';
    this.state = state;
    this.lastError = error;
    this.since = Date.now();
    if (state === 'connected' && wasDown) this.log.info({ revision: this.revision.toString() }, 'etcd connection restored; resuming after the last revision seen');
  }
}

