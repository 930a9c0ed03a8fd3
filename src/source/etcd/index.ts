// The etcd source (DESIGN.md "Sources"): the keys under a prefix become batches, as directory events do for
// files. The start is revision-consistent (one range read at revision R, the watch from R+1), one etcd revision
// is never split across batches, a lost connection resumes from the last revision seen, and a compacted
// revision (or a cluster whose revision went backwards) turns into one full re-read. A prefix that holds a fleet
// head (`P.hotconf/head`, layout.ts) is in release mode: the instance serves exactly the release the head names
// for its id, fetched by sha, handed to the pipeline as one full batch (one version, never a mix); only that
// release's bytes are held. It registers itself (instance.ts) and, with `cacheDir`, keeps the applied release on
// disk to start from while etcd is down (cache.ts). etcd3's own watcher
// resumes from the revision of its last *create* response, which can skip events that were still being
// replayed when the stream broke, and it reuses a stale auth token on a new stream: so this module owns the
// reconnect loop and only lets etcd3 carry one watch at a time. It keeps a mirror of the prefix, which the
// pipeline reads configs from.
import { readFileSync } from 'node:fs';
import type { Etcd3, IKeyValue, IWatchResponse } from 'etcd3';
import type { Logger } from 'pino';
import { settleWithin } from '../../async.js';
import { HotconfError, NameConflictError } from '../../errors.js';
import { candidatesOf, configNameOf, formatOf } from '../../names.js';
import type { BatchOutcome, EntryRead, FleetStatus, ReadLimits, Source, SourceBatch } from '../index.js';
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
  EtcdError,
} from './client.js';
import { readCache, writeCache, type CachedRelease } from './cache.js';
import { defaultInstanceId, fleetStatusOf, InstanceRegistry, readFleet } from './instance.js';
import { decodeHead, fleetKeys, targetOf, type Head, type ManifestEntry } from './layout.js';
import { fetchRelease, readPrefixState } from './release-read.js';

export * from './client.js';
export { pushEntries, PushConflictError, type PushPlan, type PushResult } from './push.js';
export { cacheFileOf, readCache, writeCache, type CachedRelease } from './cache.js';

/** hotconf's version, for the instance record: from the nearest package.json named hotconf above this module
 *  (src/source/etcd/ under vitest, dist/source/etcd/ or the CLI's bundle in dist/cli/). */
const HOTCONF_VERSION = (() => {
  for (let dir = new URL('.', import.meta.url), up = 0; up < 5; up++, dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'hotconf' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one directory up
    }
  }
  return 'unknown';
})();

/** The release this instance holds: its entries and exactly the blobs they name. */
interface HeldRelease {
  readonly release: number;
  readonly entries: ReadonlyMap<string, ManifestEntry>;
  readonly blobs: ReadonlyMap<string, Uint8Array>;
}

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
  #initial: SourceBatch | undefined;
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
  private interrupt: ((why: 'lost' | 'canceled' | 'resync' | 'close' | 'rewatch') => void) | undefined;
  private resyncRequested = false;
  // ---- release mode ----
  private readonly fleet_: ReturnType<typeof fleetKeys>;
  private readonly registry: InstanceRegistry;
  private readonly cacheDir: string | undefined;
  /** The head as last handed to the consumer; undefined in plain mode. */
  private head: Head | undefined;
  /** The raw head of the last batch (a head event replaces it; a full batch without one clears it). */
  private headBytes: Uint8Array | undefined;
  /** Its mod_revision, and that of every head value seen (by value object, as the queue carries only values). */
  private headRevision: string | undefined;
  private readonly headRevisions = new WeakMap<Uint8Array, string>();
  /** The watch in place follows the head alone (release mode), not the prefix. */
  private watchingHead = false;
  /** The release whose content read() serves (the last one handed to the pipeline). */
  private held: HeldRelease | undefined;
  /** The entries of the release last applied (what the store holds): a switch names only what differs from it. */
  private applied: ReadonlyMap<string, ManifestEntry> | undefined;
  /** The release the cache file holds. */
  private cached: number | undefined;
  private caching: Promise<void> = Promise.resolve();
  /** Plain keys warned about in release mode. */
  private readonly ignoredInRelease = new Set<string>();
  /** Serving a cached release because etcd was unreachable at start (ms since the epoch). */
  private staleSince: number | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private fetchFailures = 0;

  private constructor(client: Etcd3, options: EtcdOptions, logger: Logger) {
    this.client = client;
    this.prefix = normalizePrefix(options.prefix);
    this.endpoints = [...options.endpoints];
    this.log = logger;
    this.minMs = options.reconnectMinMs ?? ETCD_DEFAULTS.reconnectMinMs;
    this.maxMs = Math.max(this.minMs, options.reconnectMaxMs ?? ETCD_DEFAULTS.reconnectMaxMs);
    this.timeoutMs = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
    this.revision = 0n;
    this.clusterId = '';
    this.fleet_ = fleetKeys(this.prefix);
    this.cacheDir = options.cacheDir;
    this.registry = new InstanceRegistry(client, this.prefix, options.instanceId ?? defaultInstanceId(), HOTCONF_VERSION, logger);
  }

  /** Every config there is at open: the first batch (a release, in release mode). */
  get initial(): SourceBatch {
    return this.#initial!;
  }

  /** Connects, reads the whole prefix at one revision and starts watching after it. Rejects with an
   *  {@link EtcdError} (`E_SOURCE_UNAVAILABLE`, `E_SOURCE_AUTH`) when etcd cannot be read. */
  static async open(options: EtcdOptions, logger: Logger): Promise<EtcdSource> {
    const client = await etcdClient(options);
    const source = new EtcdSource(client, options, logger);
    try {
      const res = await readPrefixState(client, source.prefix);
      source.revision = BigInt(res.revision);
      source.clusterId = res.clusterId;
      source.#initial = await source.convert(
        { seq: 0, items: new Map(res.kvs.flatMap((kv) => source.noteHead(kv).keyOf(kv.key, kv.value))), reasons: new Set(['request']), firstHintAt: performance.now(), full: true, overflowed: false },
        true,
      );
      logger.info({ revision: res.revision, keys: res.kvs.length, prefix: options.prefix, ...(source.head ? { release: source.held?.release } : {}) }, 'etcd prefix read');
    } catch (err) {
      const e = describeEtcdError(err, options.endpoints);
      const cached = e.code === 'E_SOURCE_UNAVAILABLE' ? await source.fromCache(e) : undefined;
      if (!cached) {
        client.close();
        throw e;
      }
      source.registry.start(); // a cache holds a release: this instance is in a fleet
      // Serving the cache: ready now; the loop reads everything as soon as etcd answers, and converges.
      source.loop = source.run(true);
      return source;
    }
    // Ready means watching: wait for the first watch to be established (or to fail, then the loop retries).
    const decided = new Promise<void>((resolve) => (source.firstAttempt = resolve));
    source.loop = source.run();
    await decided;
    return source;
  }

  /** etcd is unreachable at start: the cached release as the initial batch, or undefined (no cacheDir, no file). */
  private async fromCache(e: EtcdError): Promise<CachedRelease | undefined> {
    if (this.cacheDir === undefined) return undefined;
    let cached: CachedRelease | undefined;
    try {
      cached = await readCache(this.cacheDir, this.prefix);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'the cached release cannot be used');
      return undefined;
    }
    if (!cached) {
      this.log.warn({ cacheDir: this.cacheDir }, 'etcd is unreachable and no release is cached yet');
      return undefined;
    }
    this.staleSince = Date.now();
    this.cached = cached.release;
    this.held = cached;
    this.revision = BigInt(cached.revision);
    this.state = 'disconnected';
    this.lastError = e.message;
    this.registry.update({ target: cached.release, staleSince: this.staleSince });
    this.#initial = {
      seq: 0,
      names: this.namesOfHeld(),
      full: true,
      reasons: new Set(['request']),
      firstHintAt: performance.now(),
      revision: cached.revision,
      release: cached.release,
    };
    this.log.warn(
      { release: cached.release, revision: cached.revision, savedAt: new Date(cached.savedAt).toISOString(), err: e.message },
      `etcd is unreachable: serving cached release ${cached.release} (stale) until it answers`,
    );
    return cached;
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
      mode: this.head ? 'release' : 'plain',
      release: this.registry.record.release ?? null,
      target: this.head ? targetOf(this.head, this.registry.id) : null,
      instanceId: this.registry.id,
      stale: this.staleSince !== undefined,
      staleSince: this.staleSince ?? null,
    };
  }

  /** The head and every live instance, read now; undefined in plain mode. */
  async fleet(): Promise<FleetStatus | undefined> {
    let res;
    try {
      res = await readFleet(this.client, this.prefix);
    } catch (err) {
      throw describeEtcdError(err, this.endpoints);
    }
    return res.head ? fleetStatusOf(res.head, res.instances) : undefined;
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
      for await (const batch of this.queue) {
        let converted: SourceBatch | undefined;
        try {
          converted = await this.convert(batch, false);
        } catch (err) {
          // Never end the pipeline's loop: say so, and look at everything again.
          this.log.error({ err }, 'etcd batch could not be handled; reading the prefix again');
          this.resyncRequested = true;
          this.interrupt?.('resync');
        }
        if (converted) yield converted;
      }
    } finally {
      await this.close();
    }
  }

  /**
   * Applies a batch to the mirror of the plain keys and the head. Plain mode: names the configs it touched (a
   * full batch: every name, old and new). Release mode: when the release this instance runs changes (or on a
   * full batch), fetches it and names every config of it in one full batch with `release`; otherwise there is
   * nothing for the pipeline (undefined). The revision is the last one seen: the queue holds exactly the events up
   * to it. `atOpen`: a release that cannot be fetched rejects (else: logged, tried again after a pause).
   */
  private async convert(batch: QueuedBatch<KeyChange>, atOpen: boolean): Promise<SourceBatch | undefined> {
    const names = new Set<string>();
    const touch = (key: string) => {
      const name = this.nameOfKey(key);
      if (name !== undefined) names.add(name);
    };
    if (batch.full) {
      for (const key of this.keys.keys()) touch(key);
      this.keys.clear();
      this.headBytes = undefined;
    }
    let headMoved = batch.full;
    for (const [key, bytes] of batch.items) {
      if (key === this.fleet_.head) {
        this.headBytes = bytes ?? undefined;
        this.headRevision = bytes === null ? undefined : this.headRevisions.get(bytes);
        headMoved = true;
        continue;
      }
      if (bytes === null) this.keys.delete(key);
      else this.keys.set(key, bytes);
      touch(key);
    }
    const wasRelease = this.head !== undefined;
    if (headMoved) {
      try {
        this.head = this.headBytes === undefined ? undefined : decodeHead(this.fleet_.head, this.headBytes);
      } catch (err) {
        if (atOpen) throw new EtcdError('E_SOURCE_RELEASE', (err as Error).message);
        this.log.error({ err: (err as Error).message }, 'the fleet head cannot be read; staying on the release served');
        return undefined;
      }
      this.registry.follow(this.head);
      // Only a fleet member has a record (plain mode stays as it was: no heartbeat moves the revision).
      if (this.head) this.registry.start();
      else this.registry.stop();
    }
    // The mode changed: the watch follows the other range from the revision seen (no gap: what the old watch
    // delivered is queued).
    if ((this.head !== undefined) !== this.watchingHead) this.interrupt?.('rewatch');
    const base = { seq: batch.seq, reasons: batch.reasons, firstHintAt: batch.firstHintAt, revision: this.revision.toString() };
    if (this.head === undefined) {
      if (!wasRelease) return { ...base, names, full: batch.full };
      // The head was deleted: the prefix holds plain keys again; every plain config is listed.
      this.log.warn({ prefix: this.prefix }, 'the fleet head is gone: serving the plain keys under the prefix');
      this.held = undefined;
      this.applied = undefined;
      this.registry.update({ release: undefined, target: undefined });
      if (!batch.full) {
        // The plain keys were not followed in release mode: read them all (the next batch lists them).
        this.resyncRequested = true;
        this.interrupt?.('resync');
        return undefined;
      }
      return { ...base, names: new Set([...this.keys.keys()].flatMap((k) => this.nameOfKey(k) ?? [])), full: true };
    }
    for (const key of batch.full || !wasRelease ? this.keys.keys() : names.size > 0 ? batch.items.keys() : []) this.warnPlainInRelease(key);
    const target = targetOf(this.head, this.registry.id);
    this.registry.update({ target });
    if (!batch.full && wasRelease && this.held?.release === target) return undefined;
    try {
      const t0 = performance.now();
      const content = await fetchRelease(this.client, this.prefix, target, this.held?.blobs ?? new Map());
      this.held = content;
      this.fetchFailures = 0;
      this.log.info({ release: target, configs: content.entries.size, fetched: content.fetched, ms: Math.round(performance.now() - t0) }, `release ${target} read`);
    } catch (err) {
      const e = describeEtcdError(err, this.endpoints);
      if (atOpen) throw e;
      // Not now: the release served stays; a full read later tries again (a release being garbage-collected, etcd gone).
      this.fetchFailures++;
      const delay = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.fetchFailures, 10));
      this.log.error({ err: e.message, release: target, retryMs: delay }, `release ${target} cannot be read; serving the release held, trying again`);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (this.closed) return;
        this.resyncRequested = true;
        this.interrupt?.('resync');
      }, delay);
      this.retryTimer.unref();
      return undefined;
    }
    // The revision of a release batch is the head's: every instance on this head reports the same one.
    const revision = this.headRevision === undefined ? {} : { revision: this.headRevision };
    const applied = this.applied;
    if (batch.full || !wasRelease || applied === undefined) return { ...base, names: this.namesOfHeld(), full: true, release: target, ...revision };
    // A switch from the release the store holds: only the configs whose content differs are read, parsed and
    // validated again (the others are the same bytes), still applied as one unit with the release's number.
    const differ = new Set<string>();
    const entries = this.held.entries;
    for (const [key, e] of entries) if (applied.get(key)?.sha !== e.sha) differ.add(configNameOf(key) ?? '');
    for (const key of applied.keys()) if (!entries.has(key)) differ.add(configNameOf(key) ?? '');
    differ.delete('');
    return { ...base, names: differ, full: false, release: target, ...revision };
  }

  /** Remembers the mod_revision of a head value (returns this, for chaining). */
  private noteHead(kv: IKeyValue): this {
    if (kv.key.toString() === this.fleet_.head) this.headRevisions.set(kv.value, kv.mod_revision);
    return this;
  }

  /** Every config name of the release held. */
  private namesOfHeld(): Set<string> {
    const names = new Set<string>();
    for (const key of this.held?.entries.keys() ?? []) {
      const name = configNameOf(key);
      if (name !== undefined) names.add(name);
    }
    return names;
  }

  private warnPlainInRelease(key: string): void {
    if (!this.keys.has(key) || this.ignoredInRelease.has(key) || this.ignoredInRelease.size >= 10_000) return;
    this.ignoredInRelease.add(key);
    this.log.warn({ key: displayKey(key) }, `prefix is in release mode; plain key ${displayKey(key)} ignored`);
  }

  /** The pipeline is done with a batch: the instance record says what this instance runs; an applied release is
   *  cached (cacheDir). */
  settled(batch: SourceBatch, outcome?: BatchOutcome): Promise<void> {
    if (outcome === undefined) return Promise.resolve();
    if (batch.release === undefined) {
      this.registry.update({ state: outcome.errors > 0 ? 'error' : 'ok', errors: outcome.errors });
      return Promise.resolve();
    }
    if (outcome.applied) {
      if (this.held?.release === batch.release) this.applied = this.held.entries;
      const fresh = this.registry.record.release !== batch.release;
      this.registry.update({ release: batch.release, target: batch.release, state: 'ok', errors: 0, ...(fresh ? { appliedAt: Date.now() } : {}) });
      if (this.registry.record.appliedAt === undefined) this.registry.update({ appliedAt: Date.now() });
      const held = this.held;
      if (this.cacheDir !== undefined && held?.release === batch.release && this.cached !== batch.release) {
        const dir = this.cacheDir;
        const revision = batch.revision ?? this.revision.toString();
        this.cached = batch.release;
        this.caching = this.caching.then(async () => {
          try {
            const file = await writeCache(dir, { prefix: this.prefix, release: held.release, revision, entries: held.entries, blobs: held.blobs });
            this.log.debug({ file, release: held.release }, 'release cached');
          } catch (err) {
            this.cached = undefined;
            this.log.error({ err: (err as Error).message, cacheDir: dir }, 'the applied release could not be cached');
          }
        });
      }
    } else {
      this.registry.update({ state: 'error', errors: outcome.errors, target: batch.release });
    }
    this.registry.kick();
    return Promise.resolve();
  }

  /** The one key behind a config name in the mirror: the same limits as a file. */
  read(name: string, limits: ReadLimits): Promise<EntryRead> {
    if (this.head !== undefined || (this.held !== undefined && this.staleSince !== undefined)) return Promise.resolve(this.readHeld(name, limits));
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

  /** The entry behind a config name in the release held. */
  private readHeld(name: string, limits: ReadLimits): EntryRead {
    const held = this.held;
    const present = held ? candidatesOf(name).filter((k) => held.entries.has(k)) : [];
    if (!held || present.length === 0) return { kind: 'missing' };
    const shown = present.map((k) => displayKey(this.prefix + k));
    if (present.length > 1) {
      const err = new NameConflictError('E_DUPLICATE_NAME', { file: shown[0]! }, `config '${name}' is defined by ${shown.length} keys of release ${held.release} (${shown.join(', ')}); keep one`);
      return { kind: 'error', shown: shown[0], errors: [err] };
    }
    const bytes = held.blobs.get(held.entries.get(present[0]!)!.sha)!;
    const handed = bytes.byteLength > limits.maxFileBytes ? bytes : Buffer.from(bytes);
    return { kind: 'bytes', bytes: handed, format: formatOf(present[0]!) ?? 'yaml', path: shown[0]!, shown: shown[0]! };
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
      clearTimeout(this.retryTimer);
      await this.registry.close();
      await this.caching;
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

  private async run(full = false): Promise<void> {
    let attempt = 0;
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
        if (why === 'resync' || why === 'rewatch') continue;
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
  private async watchOnce(onConnected: () => void): Promise<'lost' | 'canceled' | 'resync' | 'close' | 'rewatch'> {
    // Release mode follows the head alone: plain keys are ignored there, and the fleet's content (every push's
    // blobs, every instance's heartbeat) would otherwise reach every instance. Plain mode follows the prefix.
    this.watchingHead = this.head !== undefined;
    const builder = this.watchingHead ? this.client.watch().key(this.fleet_.head) : this.client.watch().prefix(this.prefix);
    const w = builder.startRevision((this.revision + 1n).toString()).watcher();
    let canceledByServer = false;
    let timer: NodeJS.Timeout | undefined;
    const why = await new Promise<'lost' | 'canceled' | 'resync' | 'close' | 'rewatch'>((resolve) => {
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
      res = await readPrefixState(this.client, this.prefix);
    } catch (err) {
      // A requested re-read fails now (reload() says why); a compaction's re-read is retried by the loop.
      const e = describeEtcdError(err, this.endpoints);
      for (const w of waiters) w.reject(e);
      throw err;
    }
    this.resyncs++;
    this.revision = BigInt(res.revision);
    this.clusterId = res.clusterId;
    this.log.info({ revision: res.revision, keys: res.kvs.length, reason }, 'etcd prefix read again');
    if (this.staleSince !== undefined) {
      this.log.info({ staleSinceMs: Date.now() - this.staleSince }, 'etcd answers: no longer serving the cached release');
      this.staleSince = undefined;
      this.registry.update({ staleSince: undefined });
    }
    const entries = res.kvs.flatMap((kv) => this.noteHead(kv).keyOf(kv.key, kv.value));
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
      // The fleet's content (blobs, manifests, releases, instance records) is read on demand, never mirrored: of
      // the hidden segment, only the head is followed.
      const root = Buffer.from(this.fleet_.root);
      const head = Buffer.from(this.fleet_.head);
      const followed = (key: Buffer) => !(key.length >= root.length && root.equals(key.subarray(0, root.length))) || head.equals(key);
      const fresh = res.events.filter((ev) => BigInt(ev.kv.mod_revision) > this.revision && followed(ev.kv.key));
      // The events of one response are complete revisions (etcd never splits a revision without `fragment`).
      const last = res.events[res.events.length - 1]!;
      const top = BigInt(last.kv.mod_revision);
      if (top > this.revision) this.revision = top;
      if (fresh.length === 0) return;
      const entries = fresh.flatMap((ev) => this.noteHead(ev.kv).keyOf(ev.kv.key, ev.type === 'Delete' ? null : ev.kv.value));
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

