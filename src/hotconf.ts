// createHotconf wires the pipeline: a source of change hints (the directory watcher, or an etcd prefix) → load
// (read, parse) → validate (JSON Schema) → store.commit (one atomic version per batch) → subscribers.
// It owns the memory of what was read (file identities) that turns hints into convergence: every batch
// re-stats what it touched, every rescan compares the disk with that memory (DESIGN.md point 4).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import {
  ConfigError,
  HotconfError,
  InitialLoadError,
  NameConflictError,
  ReadError,
  type ConfigErrorJSON,
} from './errors.js';
import {
  CONFIG_EXTENSIONS,
  mapLimit,
  parseConfig,
  RACY_WINDOW_MS,
  readStable,
  statIdentity,
  type FileIdentity,
} from './load/index.js';
import {
  Store,
  type Change,
  type ChangeHandler,
  type EntryInput,
  type Snapshot,
  type StoreStats,
  type Unsubscribe,
} from './store/index.js';
import { displayKey, EtcdSource, type EtcdBatch, type EtcdOptions, type EtcdSourceStatus } from './etcd/index.js';
import { redact, SchemaRegistry, SCHEMA_SUFFIX } from './validate/index.js';
import { ConfigParser } from './load/worker.js';
import { DirWatcher, walkConfigFiles, type ChangeBatch } from './watch/index.js';
import { checkOptions, OPTION_DEFAULTS, type BatchPolicy, type HotconfOptions, type RuntimeOptions } from './options.js';

export type { BatchPolicy, HotconfOptions, RuntimeOptions } from './options.js';

/** Values of configs as the caller declared them, deeply read-only. */
export type DeepReadonly<T> = T extends (infer R)[]
  ? ReadonlyArray<DeepReadonly<R>>
  : T extends (...args: never[]) => unknown
    ? T
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export type ConfigState = 'ok' | 'error' | 'pending' | 'deleted';

export interface ConfigStatus {
  readonly name: string;
  /** `ok`: the store holds what is on disk. `error`: the file is refused, the last good value (if any) stays.
   *  `pending`: valid, but held back by another file of its batch (all-or-nothing). `deleted`: file gone, value kept (`keepOnDelete`). */
  readonly state: ConfigState;
  /** The file behind the config, as shown in messages. */
  readonly file: string | undefined;
  /** Hash of the value in the store (last good), if any. */
  readonly hash: string | undefined;
  /** Version in which the stored value last changed. */
  readonly version: number | undefined;
  /** The first problem, and all of them. */
  readonly error: ConfigErrorJSON | undefined;
  readonly errors: readonly ConfigErrorJSON[];
  /** When the state last changed (ms since the epoch). */
  readonly since: number;
}

/** Where the configs come from, and whether that source is reachable. */
export type SourceStatus = { readonly kind: 'files'; readonly connected: true; readonly configDir: string } | EtcdSourceStatus;

export interface HotconfStatus {
  readonly version: number;
  /** The etcd revision the snapshot reflects; undefined for files. */
  readonly sourceRevision: string | undefined;
  /** The source: a directory (always connected), or etcd with its connection state. A disconnected source
   *  keeps the last good config served. */
  readonly source: SourceStatus;
  /** Initial load done and the watcher running. */
  readonly ready: boolean;
  /** Number of configs in `error` state. */
  readonly errors: number;
  readonly configs: readonly ConfigStatus[];
}

export interface ReloadResult {
  /** The store's version after the rescan. */
  readonly version: number;
  /** Every problem outstanding after the rescan (empty when all is valid). */
  readonly errors: readonly ConfigErrorJSON[];
}

/** What one processed batch did: for logs, metrics and the daemon's status line. */
export interface BatchResult {
  /** The store's version after the batch. */
  readonly version: number;
  /** True when the batch committed a new version. */
  readonly committed: boolean;
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Problems found in this batch (the batch may still have committed under `per-file`). */
  readonly errors: readonly ConfigErrorJSON[];
  /** Names held back by `all-or-nothing`. */
  readonly held: readonly string[];
  /** Time spent processing the batch, in ms. */
  readonly durationMs: number;
  /** From the first event of the batch to the end of its processing, in ms. */
  readonly latencyMs: number;
}

export interface HotconfHealth {
  /** Initial load done, not closed, and no batch stuck for longer than `stallMs`. */
  readonly healthy: boolean;
  /** How long the batch being processed has been running, in ms; undefined when idle. */
  readonly batchInFlightMs: number | undefined;
  /** When the last batch finished (ms since the epoch); undefined before the first. */
  readonly lastBatchAt: number | undefined;
}

type Outcome =
  | { kind: 'ok'; name: string; file: string; value: unknown; hash: string; secrets: readonly string[] }
  | { kind: 'error'; name: string; file: string | undefined; path: string | undefined; errors: ConfigError[] }
  | { kind: 'removed'; name: string }
  /** Written in place faster than it could be read whole: not an error, just not yet; looked at again. */
  | { kind: 'unsettled'; name: string; file: string };

interface Problem {
  readonly state: ConfigState;
  readonly file: string | undefined;
  readonly errors: readonly ConfigError[];
  readonly since: number;
}

/** The public face of a running pipeline. `T` maps config names to their value types. */
export class Hotconf<T extends Record<string, unknown> = Record<string, unknown>> implements AsyncDisposable {
  private readonly store: Store;
  private readonly registry: SchemaRegistry;
  private readonly parser: ConfigParser;
  private readonly configDir: string;
  private readonly schemaDir: string | undefined;
  /** The etcd source, when the configs come from etcd (then `watcher` is unused). */
  private etcd: EtcdSource | undefined;
  private readonly etcdOptions: EtcdOptions | undefined;
  /** etcd mode: every key under the prefix and its bytes, as of the last batch (the source's mirror). */
  private readonly keys = new Map<string, Uint8Array>();
  /** etcd mode: keys with an unknown extension, logged once each. */
  private readonly ignoredKeys = new Set<string>();
  private readonly log: Logger;
  private opts: Required<
    Pick<HotconfOptions, 'requireSchema' | 'batchPolicy' | 'maxFileBytes' | 'maxDepth' | 'maxAliasCount' | 'concurrency' | 'keepOnDelete'>
  >;
  /** What was last read (or failed to be read) per absolute path: identity key, for the convergence sweep. */
  private readonly known = new Map<string, string>();
  /** Configs whose state is not plain `ok`. */
  private readonly problems = new Map<string, Problem>();
  /** Names held back by an all-or-nothing failure: retried with the next batch. */
  private readonly retry = new Set<string>();
  private watcher: DirWatcher | undefined;
  private loop: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private ready = false;
  private readonly racy = new Set<string>();
  private readonly batchListeners = new Set<(result: BatchResult) => void>();
  private batchStartedAt: number | undefined;
  private lastBatchAt: number | undefined;
  private racyTimer: NodeJS.Timeout | undefined;

  /** @internal use {@link createHotconf}. */
  constructor(options: HotconfOptions, logger: Logger) {
    // etcd mode has no directory: '' keeps the file-only paths of this class inert.
    this.configDir = options.configDir === undefined ? '' : path.resolve(options.configDir);
    this.etcdOptions = options.etcd;
    this.schemaDir = options.schemaDir === undefined ? undefined : path.resolve(options.schemaDir);
    this.log = logger;
    this.opts = {
      requireSchema: options.requireSchema ?? OPTION_DEFAULTS.requireSchema,
      batchPolicy: options.batchPolicy ?? OPTION_DEFAULTS.batchPolicy,
      maxFileBytes: options.maxFileBytes ?? OPTION_DEFAULTS.maxFileBytes,
      maxDepth: options.maxDepth ?? OPTION_DEFAULTS.maxDepth,
      maxAliasCount: options.maxAliasCount ?? OPTION_DEFAULTS.maxAliasCount,
      concurrency: options.concurrency ?? OPTION_DEFAULTS.concurrency,
      keepOnDelete: options.keepOnDelete ?? OPTION_DEFAULTS.keepOnDelete,
    };
    this.registry = new SchemaRegistry({
      schemaDir: this.schemaDir ?? (this.configDir || process.cwd()),
      useDefaults: options.useDefaults ?? OPTION_DEFAULTS.useDefaults,
      logger: logger.child({ module: 'validate' }),
      displayPath,
    });
    this.parser = new ConfigParser({ workerThresholdBytes: options.workerThresholdBytes ?? OPTION_DEFAULTS.workerThresholdBytes });
    this.store = new Store({
      logger: logger.child({ module: 'store' }),
      closeTimeoutMs: options.closeTimeoutMs ?? OPTION_DEFAULTS.closeTimeoutMs,
    });
  }

  // ---- reads -------------------------------------------------------------------------------------------

  /** Current version; strictly increases with each commit. 0 before anything is committed. */
  get version(): number {
    return this.store.version;
  }

  /** The current deep-frozen value of a config, or undefined. O(1). */
  get<K extends keyof T & string>(name: K): DeepReadonly<T[K]> | undefined {
    return this.store.get(name) as DeepReadonly<T[K]> | undefined;
  }

  /** The current immutable snapshot: safe to hold, never changes. */
  snapshot(): Snapshot {
    return this.store.snapshot();
  }

  /** Subscribes to committed changes: all, one name, several names, or a selector of the snapshot. */
  onConfigChange(handler: ChangeHandler): Unsubscribe;
  onConfigChange(name: (keyof T & string) | readonly (keyof T & string)[], handler: ChangeHandler): Unsubscribe;
  onConfigChange(selector: (snapshot: Snapshot) => unknown, handler: ChangeHandler): Unsubscribe;
  onConfigChange(
    a: ChangeHandler | string | readonly string[] | ((snapshot: Snapshot) => unknown),
    b?: ChangeHandler,
  ): Unsubscribe {
    if (b === undefined) return this.store.onConfigChange(a as ChangeHandler);
    return this.store.onConfigChange(a as (snapshot: Snapshot) => unknown, b);
  }

  /** Committed changes as an async iterable, from now on; a slow consumer gets them coalesced. */
  changes(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<Change> & AsyncDisposable {
    return this.store.changes(options);
  }

  /** Per-config state: ok, or the error that keeps the last good value live. */
  status(): HotconfStatus {
    const snap = this.store.snapshot();
    const names = new Set([...snap.configs.keys(), ...this.problems.keys()]);
    const configs: ConfigStatus[] = [...names].sort().map((name) => {
      const entry = snap.configs.get(name);
      const problem = this.problems.get(name);
      const errors = (problem?.errors ?? []).map((e) => e.toJSON());
      return {
        name,
        state: problem?.state ?? 'ok',
        file: problem?.file ?? (entry ? displayPath(entry.path) : undefined),
        hash: entry?.hash,
        version: entry?.version,
        error: errors[0],
        errors,
        since: problem?.since ?? snap.committedAt,
      };
    });
    return {
      version: snap.version,
      sourceRevision: snap.sourceRevision,
      source: this.etcd ? this.etcd.status() : { kind: 'files', connected: true, configDir: this.configDir },
      ready: this.ready && this.closing === undefined,
      errors: configs.filter((c) => c.state === 'error').length,
      configs,
    };
  }

  /** Full rescan: every file and schema is read again (etcd: the schemas, and the whole prefix in one range read,
   *  diffed against the store). Resolves once that batch committed or was rejected. */
  async reload(): Promise<ReloadResult> {
    if (this.closing || (!this.watcher && !this.etcd)) throw new HotconfError('E_CLOSED', 'hotconf is closed');
    if (this.etcd) {
      this.schemasChanged = await this.loadSchemas();
      await this.etcd.resync();
      return { version: this.version, errors: this.currentErrors() };
    }
    await this.watcher!.rescan();
    return { version: this.version, errors: this.currentErrors() };
  }

  /** Changes the options that are safe to change while running; the next batch uses them. */
  update(options: RuntimeOptions): void {
    checkOptions({ ...(this.etcdOptions ? { etcd: this.etcdOptions } : { configDir: this.configDir }), requireSchema: false, ...options });
    const { batchPolicy, maxFileBytes, keepOnDelete, debounceMs, maxBatchDelayMs, verifyIntervalMs } = options;
    this.opts = {
      ...this.opts,
      ...(batchPolicy === undefined ? {} : { batchPolicy }),
      ...(maxFileBytes === undefined ? {} : { maxFileBytes }),
      ...(keepOnDelete === undefined ? {} : { keepOnDelete }),
    };
    this.watcher?.setTiming({
      ...(debounceMs === undefined ? {} : { debounceMs }),
      ...(maxBatchDelayMs === undefined ? {} : { maxBatchDelayMs }),
      ...(verifyIntervalMs === undefined ? {} : { verifyIntervalMs }),
    });
    this.log.info({ options }, 'options updated');
  }

  /** Subscriber counters from the store: failed handler calls, live subscribers and `changes()` iterators. */
  get stats(): StoreStats {
    return this.store.stats;
  }

  /** Calls `listener` after every processed batch, committed or not. Returns the unsubscribe function. */
  onBatch(listener: (result: BatchResult) => void): Unsubscribe {
    this.batchListeners.add(listener);
    const off = () => void this.batchListeners.delete(listener);
    return Object.assign(off, { [Symbol.dispose]: off });
  }

  /** Resolves once a batch has gone all the way through the pipeline: proof that it still moves. */
  async ping(): Promise<void> {
    if (this.closing || (!this.watcher && !this.etcd)) throw new HotconfError('E_CLOSED', 'hotconf is closed');
    // etcd batches are processed as they arrive; the loop is alive when it waits for the next one.
    if (this.etcd) return;
    await this.watcher!.ping();
  }

  /** Liveness of the pipeline, for watchdogs: unhealthy when a batch has been stuck for `stallMs`. */
  health(stallMs = 30_000): HotconfHealth {
    const batchInFlightMs = this.batchStartedAt === undefined ? undefined : performance.now() - this.batchStartedAt;
    return {
      healthy: this.ready && this.closing === undefined && (batchInFlightMs ?? 0) < stallMs,
      batchInFlightMs,
      lastBatchAt: this.lastBatchAt,
    };
  }

  /** Stops the watcher, finishes the batch in flight, ends every `changes()` iterator and waits (bounded)
   *  for handlers in flight. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async doClose(): Promise<void> {
    await this.watcher?.close();
    await this.etcd?.close();
    await this.loop;
    clearTimeout(this.racyTimer);
    await this.parser.close();
    await this.store.close();
    this.log.debug('closed');
  }

  private currentErrors(): ConfigErrorJSON[] {
    return [...this.problems.values()].filter((p) => p.state === 'error').flatMap((p) => p.errors.map((e) => e.toJSON()));
  }

  /** @internal One pass over the disk without watching or committing: what `hotconf check` reports. */
  async checkOnce(files?: readonly string[]): Promise<CheckReport> {
    if (this.schemaDir) {
      const schemaFiles: string[] = [];
      for await (const f of walkConfigFiles(this.schemaDir, { extensions: ['.json'] })) if (this.isSchemaFile(f)) schemaFiles.push(f);
      await this.registry.reload(schemaFiles);
    }
    const names = new Set<string>();
    const unknown: ConfigError[] = [];
    for (const file of files ?? (await collect(walkConfigFiles(this.configDir)))) {
      const abs = path.resolve(file);
      const name = this.configNameOf(abs);
      if (name !== undefined) names.add(name);
      else if (files) unknown.push(new ReadError('E_NOT_FOUND', { file: displayPath(abs) }, `is not a config file under ${displayPath(this.configDir)}`));
    }
    const outcomes = await mapLimit([...names].sort(), this.opts.concurrency, (name) => this.loadOne(name));
    const configs: CheckedConfig[] = outcomes.map((o) =>
      o.kind === 'ok'
        ? { name: o.name, file: displayPath(o.file), ok: true, value: o.value, secrets: o.secrets, errors: [] }
        : o.kind === 'error'
          ? { name: o.name, file: o.file, ok: false, value: undefined, secrets: [], errors: o.errors.map((e) => e.toJSON()) }
          : o.kind === 'unsettled'
            ? { name: o.name, file: displayPath(o.file), ok: false, value: undefined, secrets: [], errors: [new ReadError('E_UNSTABLE', { file: displayPath(o.file) }, 'kept changing while being read').toJSON()] }
            : { name: o.name, file: undefined, ok: false, value: undefined, secrets: [], errors: [new ReadError('E_NOT_FOUND', { file: o.name }, 'not found').toJSON()] },
    );
    const errors = [...unknown.map((e) => e.toJSON()), ...configs.flatMap((c) => c.errors)];
    return { ok: errors.length === 0, configs, errors };
  }

  // ---- start-up ----------------------------------------------------------------------------------------

  /** @internal */
  async start(options: HotconfOptions): Promise<void> {
    if (options.etcd) return this.startEtcd(options, options.etcd);
    await assertDirectories(this.configDir, this.schemaDir);
    const roots = this.schemaDir && !isInside(this.schemaDir, this.configDir) ? [this.configDir, this.schemaDir] : [this.configDir];
    // Watch before the first read, so that nothing written during the initial load is missed.
    this.watcher = await DirWatcher.open({
      roots,
      debounceMs: options.debounceMs ?? OPTION_DEFAULTS.debounceMs,
      maxBatchDelayMs: options.maxBatchDelayMs ?? OPTION_DEFAULTS.maxBatchDelayMs,
      verifyIntervalMs: options.verifyIntervalMs ?? OPTION_DEFAULTS.verifyIntervalMs,
      usePolling: options.usePolling ?? OPTION_DEFAULTS.usePolling,
      logger: this.log.child({ module: 'watch' }),
    });
    try {
      // The initial batch applies what is valid; unless told to start with that, any error rejects start-up.
      const errors = await this.process(new Set(), new Set(roots), true, 'per-file');
      if (errors.length > 0 && !options.startWithValid) throw new InitialLoadError(errors);
    } catch (err) {
      await this.watcher.close();
      await this.parser.close();
      await this.store.close();
      throw err;
    }
    this.ready = true;
    this.loop = this.run();
    this.log.info({ version: this.version, configs: this.store.snapshot().configs.size, errors: this.status().errors }, 'hotconf ready');
  }

  private run(): Promise<void> {
    const watcher = this.watcher!;
    return this.drive(watcher, (batch) => this.processBatch(batch), () => watcher.rescan(), 'rescanning');
  }

  /** The pipeline's loop over a source's batches, whichever the source: one batch at a time, timed for
   *  health(). A bug or an unexpected I/O failure must not end the pipeline: it is logged and the source is
   *  asked to look at everything again. */
  private async drive<B extends { readonly seq: number }>(
    source: AsyncIterable<B>,
    processOne: (batch: B) => Promise<unknown>,
    recover: () => Promise<unknown>,
    recovery: string,
  ): Promise<void> {
    for await (const batch of source) {
      this.batchStartedAt = performance.now();
      try {
        await processOne(batch);
      } catch (err) {
        this.log.error({ err, seq: batch.seq }, `batch failed unexpectedly; ${recovery}`);
        recover().catch(() => undefined);
      } finally {
        this.batchStartedAt = undefined;
        this.lastBatchAt = Date.now();
      }
    }
  }

  private async processBatch(batch: ChangeBatch): Promise<void> {
    const force = batch.reasons.has('request');
    await this.process(batch.paths, batch.rescan, force, this.opts.batchPolicy, batch.firstHintAt);
  }

  // ---- one batch ---------------------------------------------------------------------------------------

  /**
   * Turns hints into outcomes and commits them. `paths` are hinted files; `rescan` directories are listed and
   * compared with what was last read (`force`: read everything listed). Returns the errors of the batch.
   */
  private async process(
    paths: ReadonlySet<string>,
    rescan: ReadonlySet<string>,
    force: boolean,
    policy: BatchPolicy,
    firstHintAt = performance.now(),
  ): Promise<ConfigError[]> {
    const started = performance.now();
    const candidates = new Set<string>();
    for (const p of paths) candidates.add(p);
    const listing: Listing = { dirs: new Set(), files: new Set() };
    for (const dir of rescan) for (const p of await this.sweep(dir, force, listing)) candidates.add(p);

    // Schemas first: a changed schema re-validates the configs that use it.
    const schemaFiles = [...candidates].filter((p) => this.isSchemaFile(p));
    const names = new Set<string>();
    if (schemaFiles.length > 0) {
      // What was read is remembered by the identity of the version read; files that could not be read by a stat.
      const unread: string[] = [];
      const onRead = (f: string, id: FileIdentity | undefined) => (id ? this.known.set(f, keyOf(id)) : unread.push(f));
      for (const name of await this.registry.reload(schemaFiles, onRead)) names.add(name);
      await mapLimit(unread, 32, (f) => this.remember(f));
    }
    for (const p of candidates) {
      const name = this.configNameOf(p);
      if (name !== undefined) names.add(name);
    }
    // Nothing new on disk (a verify tick that found nothing): held-back names wait for a real change,
    // so that an invalid file is reported once, not once per tick.
    if (names.size === 0) return [];
    for (const name of this.retry) names.add(name);

    const outcomes = await mapLimit([...names].sort(), this.opts.concurrency, (name) => this.loadOne(name, listing));
    return this.apply(outcomes, policy, started, firstHintAt, undefined);
  }

  /** Records the outcomes of a batch, commits the valid ones (all or nothing, or per file) with the source's
   *  revision, reports the problems. Returns the errors of the batch. Shared by both sources. */
  private async apply(
    outcomes: readonly Outcome[],
    policy: BatchPolicy,
    started: number,
    firstHintAt: number,
    sourceRevision: string | undefined,
  ): Promise<ConfigError[]> {
    const failed = outcomes.filter((o): o is Extract<Outcome, { kind: 'error' }> => o.kind === 'error');
    const errors = failed.flatMap((o) => o.errors);
    const unsettled = outcomes.some((o) => o.kind === 'unsettled');
    const holdBack = (failed.length > 0 || unsettled) && policy === 'all-or-nothing';
    const now = Date.now();

    const set: EntryInput[] = [];
    const remove: string[] = [];
    const recovered: string[] = [];
    this.retry.clear();
    for (const o of outcomes) {
      if (o.kind === 'error') {
        this.problems.set(o.name, { state: 'error', file: o.file, errors: o.errors, since: now });
        if (holdBack) this.retry.add(o.name);
      } else if (o.kind === 'unsettled') {
        this.retry.add(o.name);
        this.problems.set(o.name, { state: 'pending', file: displayPath(o.file), errors: [], since: now });
      } else if (holdBack) {
        this.retry.add(o.name);
        this.problems.set(o.name, { state: 'pending', file: o.kind === 'ok' ? displayPath(o.file) : undefined, errors: [], since: now });
      } else if (o.kind === 'ok') {
        if (this.problems.get(o.name)?.state === 'error') recovered.push(o.name);
        this.problems.delete(o.name);
        set.push({ name: o.name, value: o.value, hash: o.hash, path: o.file, secrets: o.secrets });
      } else if (this.opts.keepOnDelete && this.store.snapshot().configs.has(o.name)) {
        this.problems.set(o.name, { state: 'deleted', file: undefined, errors: [], since: now });
      } else {
        this.problems.delete(o.name);
        remove.push(o.name);
      }
    }

    const change = holdBack ? undefined : this.store.commit({ set, remove, ...(sourceRevision === undefined ? {} : { sourceRevision }) });
    const ms = round(performance.now() - started);
    if (change) {
      this.log.info(
        { version: change.version, changed: change.changed, removed: change.removed, sourceRevision, ms, latencyMs: round(performance.now() - firstHintAt) },
        'config committed',
      );
    }
    if (recovered.length > 0) this.log.info({ names: recovered, version: this.version }, 'config valid again');
    if (errors.length > 0) {
      this.log.warn(
        { errors: errors.map((e) => e.toJSON()), held: holdBack ? [...this.retry] : [], policy, version: this.version },
        holdBack ? 'batch rejected; last good config stays live' : 'invalid config refused; last good value stays live',
      );
    }
    // Listeners hear of the batch in the same tick as status changes, before the re-check below.
    this.emitBatch({
      version: this.version,
      committed: change !== undefined,
      changed: change?.changed ?? [],
      removed: change?.removed ?? [],
      errors: errors.map((e) => e.toJSON()),
      held: holdBack ? [...this.retry] : [],
      durationMs: ms,
      latencyMs: round(performance.now() - firstHintAt),
    });
    // Events are hints: whatever changed since we read it gets looked at again, event or no event. (etcd's
    // events are the truth: a value read is the value at that revision.)
    if (!this.etcd) await this.recheck(outcomes);
    return errors;
  }

  // ---- the etcd source ----------------------------------------------------------------------------------

  /** Names whose schema changed at the last reload(): re-validated with the re-read that follows. */
  private schemasChanged: string[] = [];

  /** Reads every schema under `schemaDir`; returns the names whose schema changed. (etcd mode: schemas are
   *  files deployed with the application, read at start and on reload(), not watched.) */
  private async loadSchemas(): Promise<string[]> {
    if (!this.schemaDir) return [];
    const files: string[] = [];
    for await (const f of walkConfigFiles(this.schemaDir, { extensions: ['.json'] })) if (this.isSchemaFile(f)) files.push(f);
    return this.registry.reload(files);
  }

  private async startEtcd(options: HotconfOptions, etcd: EtcdOptions): Promise<void> {
    await assertDirectories(undefined, this.schemaDir);
    await this.loadSchemas();
    const source = await EtcdSource.open(etcd, this.log.child({ module: 'etcd' }));
    this.etcd = source;
    try {
      const errors = await this.processEtcd(source.initial, 'per-file');
      if (errors.length > 0 && !options.startWithValid) throw new InitialLoadError(errors);
    } catch (err) {
      await source.close();
      await this.parser.close();
      await this.store.close();
      throw err;
    }
    this.ready = true;
    this.loop = this.runEtcd(source);
    const snap = this.store.snapshot();
    this.log.info({ version: snap.version, sourceRevision: snap.sourceRevision, configs: snap.configs.size, errors: this.status().errors }, 'hotconf ready');
  }

  private runEtcd(source: EtcdSource): Promise<void> {
    return this.drive(source, (batch) => this.processEtcd(batch, this.opts.batchPolicy), () => source.resync(), 'reading the prefix again');
  }

  /** Applies one etcd batch to the mirror of the prefix, then loads, validates and commits the names it touched
   *  (a full batch touches every name, old and new) at the batch's revision. */
  private async processEtcd(batch: EtcdBatch, policy: BatchPolicy): Promise<ConfigError[]> {
    const started = performance.now();
    const names = new Set<string>(this.schemasChanged.splice(0));
    const touch = (key: string) => {
      const name = this.nameOfKey(key);
      if (name !== undefined) names.add(name);
    };
    if (batch.full) {
      for (const key of this.keys.keys()) touch(key);
      for (const name of this.store.snapshot().configs.keys()) names.add(name);
      this.keys.clear();
    }
    for (const [key, bytes] of batch.entries) {
      if (bytes === null) this.keys.delete(key);
      else this.keys.set(key, bytes);
      touch(key);
    }
    for (const name of this.retry) names.add(name);
    const outcomes = await mapLimit([...names].sort(), this.opts.concurrency, (name) => this.loadKey(name));
    return this.apply(outcomes, policy, started, batch.firstHintAt, batch.revision);
  }

  /** Parses and validates one config name from the mirror of the prefix: the same limits as a file. */
  private async loadKey(name: string): Promise<Outcome> {
    const prefix = this.etcd!.prefix;
    const present = Object.keys(CONFIG_EXTENSIONS)
      .map((ext) => prefix + name + ext)
      .filter((k) => this.keys.has(k));
    if (present.length === 0) return { kind: 'removed', name };
    const shown = present.map(displayKey);
    if (present.length > 1) {
      const err = new NameConflictError('E_DUPLICATE_NAME', { file: shown[0]! }, `config '${name}' is defined by ${shown.length} keys (${shown.join(', ')}); keep one`);
      return { kind: 'error', name, file: shown[0], path: undefined, errors: [err] };
    }
    const key = present[0]!;
    const file = shown[0]!;
    const bytes = this.keys.get(key)!;
    try {
      if (bytes.byteLength > this.opts.maxFileBytes) {
        throw new ReadError('E_TOO_LARGE', { file }, `is too large: ${bytes.byteLength} bytes, over the limit of ${this.opts.maxFileBytes} bytes`);
      }
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const parsed = await this.parser.parse(buf, formatOfExt(key), file, { maxDepth: this.opts.maxDepth, maxAliasCount: this.opts.maxAliasCount });
      const result = await this.registry.validateAsync(name, parsed.value, parsed, file, this.opts.requireSchema);
      if (!result.ok) return { kind: 'error', name, file, path: undefined, errors: [...result.errors] };
      return { kind: 'ok', name, file, value: result.value, hash: contentHash(result.value, result.secrets), secrets: result.secrets };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return { kind: 'error', name, file, path: undefined, errors: [err] };
    }
  }

  /** `<prefix>db/primary.json` → `db/primary`, by the file naming rules; undefined (logged once) otherwise. */
  private nameOfKey(key: string): string | undefined {
    const prefix = this.etcd!.prefix;
    if (!key.startsWith(prefix)) return undefined;
    const rel = key.slice(prefix.length);
    const ext = path.posix.extname(rel);
    const base = rel.slice(0, rel.length - ext.length);
    if (CONFIG_EXTENSIONS[ext] !== undefined && base !== '' && !base.split('/').some((seg) => seg === '' || seg.startsWith('.'))) return base;
    if (!this.ignoredKeys.has(key) && this.ignoredKeys.size < 10_000) {
      this.ignoredKeys.add(key);
      this.log.warn({ key: displayKey(key) }, 'etcd key ignored: not <name>.yaml, .yml or .json under the prefix');
    }
    return undefined;
  }

  private emitBatch(result: BatchResult): void {
    for (const listener of this.batchListeners) {
      try {
        listener(result);
      } catch (err) {
        this.log.error({ err }, 'batch listener failed');
      }
    }
  }

  /** Lists `dir` and returns the paths whose identity differs from what was last read (all of them if `force`),
   *  plus the known paths under `dir` that are gone. */
  private async sweep(dir: string, force: boolean, listing?: Listing): Promise<string[]> {
    const listed = new Set<string>();
    for await (const file of walkConfigFiles(dir, listing ? { onDir: (d) => listing.dirs.add(d) } : {})) {
      if (this.isSchemaFile(file) || this.configNameOf(file) !== undefined) listed.add(file);
      listing?.files.add(file);
    }
    const differing = await mapLimit([...listed], 32, async (file) => {
      if (force) return file;
      return (await identityKey(file)) === this.known.get(file) ? undefined : file;
    });
    const out = differing.filter((f): f is string => f !== undefined);
    for (const file of this.known.keys()) if (isInside(file, dir) && !listed.has(file)) out.push(file);
    return out;
  }

  /** Reads, parses and validates one config name from disk. */
  private async loadOne(name: string, listing?: Listing): Promise<Outcome> {
    const base = path.join(this.configDir, ...name.split('/'));
    const present: string[] = [];
    const statErrors: ConfigError[] = [];
    const candidates = Object.keys(CONFIG_EXTENSIONS).map((ext) => base + ext);
    // Its directory was listed by this batch: the listing says which candidates exist, no stat needed (the read
    // that follows finds out if one went away since; one that appeared since has an event of its own).
    // Otherwise the three candidates are looked up at once: this is on every change's critical path.
    const looked = listing?.dirs.has(path.dirname(base))
      ? candidates.map((file): PromiseSettledResult<object | undefined> => ({ status: 'fulfilled', value: listing.files.has(file) ? {} : undefined }))
      : await Promise.allSettled(candidates.map((file) => statIdentity(file)));
    looked.forEach((result, i) => {
      const file = candidates[i]!;
      if (result.status === 'fulfilled') {
        if (result.value) present.push(file);
        else this.known.delete(file);
      } else if (result.reason instanceof ConfigError) {
        present.push(file);
        statErrors.push(result.reason);
      } else {
        throw result.reason;
      }
    });
    if (present.length === 0) return { kind: 'removed', name };
    if (present.length > 1) {
      await Promise.all(present.map(async (f) => this.remember(f)));
      const files = present.map(displayPath);
      const err = new NameConflictError('E_DUPLICATE_NAME', { file: files[0]! }, `config '${name}' is defined by ${files.length} files (${files.join(', ')}); keep one`);
      return { kind: 'error', name, file: files[0], path: undefined, errors: [err] };
    }
    const file = present[0]!;
    const shown = displayPath(file);
    if (statErrors.length > 0) {
      this.known.set(file, `error:${statErrors[0]!.code}`);
      return { kind: 'error', name, file: shown, path: undefined, errors: statErrors };
    }
    try {
      const { bytes, identity, racy, superseded } = await readStable(file, { maxFileBytes: this.opts.maxFileBytes, displayPath: shown });
      this.known.set(file, keyOf(identity));
      if (racy || superseded) this.lookAgainLater(file);
      const parsed = await this.parser.parse(bytes, formatOfExt(file), shown, { maxDepth: this.opts.maxDepth, maxAliasCount: this.opts.maxAliasCount });
      const result = await this.registry.validateAsync(name, parsed.value, parsed, shown, this.opts.requireSchema);
      if (!result.ok) return { kind: 'error', name, file: shown, path: file, errors: [...result.errors] };
      // The secret pointers are part of the hash: a schema change that makes a field secret is a change to
      // what may be shown, even when the value is the same.
      const hash = contentHash(result.value, result.secrets);
      return { kind: 'ok', name, file, value: result.value, hash, secrets: result.secrets };
    } catch (err) {
      if (err instanceof ReadError && err.code === 'E_UNSTABLE') {
        this.lookAgainLater(file);
        return { kind: 'unsettled', name, file };
      }
      if (err instanceof ReadError && err.code === 'E_NOT_FOUND') {
        this.known.delete(file);
        return { kind: 'removed', name };
      }
      if (!(err instanceof ConfigError)) throw err;
      if (err instanceof ReadError) await this.remember(file);
      return { kind: 'error', name, file: shown, path: file, errors: [err] };
    }
  }

  /** After a batch: any file whose identity moved since we read it is hinted again (its event may be lost). */
  private async recheck(outcomes: readonly Outcome[]): Promise<void> {
    const files = outcomes.flatMap((o) => (o.kind === 'ok' ? [o.file] : o.kind === 'error' && o.path ? [o.path] : []));
    const moved = await mapLimit(files, 32, async (f) => ((await identityKey(f)) === this.known.get(f) ? undefined : f));
    const again = moved.filter((f): f is string => f !== undefined);
    if (again.length > 0) this.watcher?.hint(again);
  }

  /** A read too close to the file's last change (see RACY_WINDOW_MS), or of a version already replaced, is
   *  committed at once and re-checked shortly after: a same-size write in the same clock tick cannot hide. */
  private lookAgainLater(file: string): void {
    this.racy.add(file);
    this.racyTimer ??= setTimeout(() => {
      this.racyTimer = undefined;
      const files = [...this.racy];
      this.racy.clear();
      this.watcher?.hint(files);
    }, RACY_WINDOW_MS + 3);
  }

  private async remember(file: string): Promise<void> {
    const key = await identityKey(file);
    if (key === undefined) this.known.delete(file);
    else this.known.set(file, key);
  }

  private isSchemaFile(file: string): boolean {
    return this.schemaDir !== undefined && file.endsWith(SCHEMA_SUFFIX) && isInside(file, this.schemaDir);
  }

  /** `config/db/primary.yaml` → `db/primary`; undefined for anything that is not a config file. */
  private configNameOf(file: string): string | undefined {
    if (!isInside(file, this.configDir) || this.isSchemaFile(file)) return undefined;
    if (this.schemaDir && isInside(file, this.schemaDir)) return undefined;
    const ext = path.extname(file);
    if (CONFIG_EXTENSIONS[ext] === undefined) return undefined;
    const rel = path.relative(this.configDir, file);
    if (rel.split(path.sep).some((s) => s.startsWith('.'))) return undefined;
    return rel.slice(0, -ext.length).split(path.sep).join('/');
  }
}

/** What the sweeps of one batch listed: the directories read, and every config-like file found in them. */
interface Listing {
  readonly dirs: Set<string>;
  readonly files: Set<string>;
}

export interface CheckedConfig {
  readonly name: string;
  readonly file: string | undefined;
  readonly ok: boolean;
  /** The validated value (defaults applied); undefined when invalid. Contains secrets: redact before showing. */
  readonly value: unknown;
  readonly secrets: readonly string[];
  readonly errors: readonly ConfigErrorJSON[];
}

export interface CheckReport {
  readonly ok: boolean;
  readonly configs: readonly CheckedConfig[];
  /** Every problem, in name order. */
  readonly errors: readonly ConfigErrorJSON[];
}

/**
 * Validates the configs on disk as `createHotconf` would (all of them, or only `files`), without watching,
 * committing or logging: a dry run for CI and `ExecStartPre=`.
 */
export async function checkConfigs(options: HotconfOptions, files?: readonly string[]): Promise<CheckReport> {
  checkOptions(options);
  if (options.etcd) throw new HotconfError('E_OPTIONS', 'checkConfigs validates a directory (configDir); for etcd, `hotconf push --dry-run` checks one');
  const hot = new Hotconf(options, options.logger ?? pino({ level: 'silent' }));
  try {
    await assertDirectories(options.configDir, options.schemaDir);
    return await hot.checkOnce(files);
  } finally {
    await hot.close(); // its parser worker, if a large file started one
  }
}

/**
 * Starts hotconf: loads every config, validates it, and watches for changes. Resolves after the initial load;
 * rejects with an {@link InitialLoadError} listing every problem when the initial config is invalid (unless
 * `startWithValid`). `await using hot = await createHotconf(…)` closes it at the end of the scope.
 */
export async function createHotconf<T extends Record<string, unknown> = Record<string, unknown>>(
  options: HotconfOptions,
): Promise<Hotconf<T>> {
  checkOptions(options);
  const logger = options.logger ?? pino({ name: 'hotconf', level: 'info' }, pino.destination(2));
  const hot = new Hotconf<T>(options, logger);
  await hot.start(options);
  if (options.signal) {
    const signal = options.signal;
    const onAbort = () => void hot.close().catch((err: unknown) => logger.error({ err }, 'close failed'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return hot;
}

async function assertDirectories(configDir: string | undefined, schemaDir: string | undefined): Promise<void> {
  for (const [what, dir] of [['configDir', configDir], ['schemaDir', schemaDir]] as const) {
    if (dir === undefined) continue;
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new HotconfError('E_OPTIONS', `${what} is not a directory: ${dir}`);
  }
}

// ---- small helpers --------------------------------------------------------------------------------------

/** Paths in messages: relative to the working directory when inside it (`config/app.yaml`), else absolute. */
function displayPath(file: string): string {
  const cwd = process.cwd();
  // Under systemd the working directory is `/`: `etc/hotconf/app.yaml` would only confuse.
  if (cwd === path.parse(cwd).root) return file;
  const rel = path.relative(cwd, file);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

function isInside(file: string, dir: string): boolean {
  return file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

function formatOfExt(file: string) {
  return CONFIG_EXTENSIONS[path.extname(file)] ?? 'yaml';
}

function keyOf(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeNs}:${id.ctimeNs}`;
}

async function identityKey(file: string): Promise<string | undefined> {
  try {
    const id = await statIdentity(file);
    return id === undefined ? undefined : keyOf(id);
  } catch (err) {
    return `error:${(err as HotconfError).code ?? 'E_READ'}`;
  }
}

/**
 * sha256 of the value's canonical JSON (keys sorted), so formatting and comments do not change it, plus the
 * pointers of its secrets. The hash is public (ETag, SSE, webhooks), so secret values enter it only through an
 * HMAC under a key that never leaves this process: a served hash cannot be used to guess a weak password. The
 * price: the hash of a config with secrets differs between processes (fleets compare `sourceRevision`).
 */
export function contentHash(value: unknown, secrets: readonly string[] = []): string {
  if (secrets.length === 0) return createHash('sha256').update(canonicalJson(value)).digest('hex');
  const hidden = createHmac('sha256', SECRET_HASH_KEY).update(canonicalJson(secrets.map((p) => pick(value, p)))).digest('hex');
  return createHash('sha256')
    .update(canonicalJson(redact(value, secrets)))
    .update(`\0secrets:${secrets.join('\0')}\0${hidden}`)
    .digest('hex');
}

const SECRET_HASH_KEY = randomBytes(32);

function pick(value: unknown, pointer: string): unknown {
  let node = value;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  }
  return node;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return `"${String(value)}"`;
  return JSON.stringify(value) ?? 'null';
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

// ---- one-shot validation (the daemon's own config, `hotconf check`) -----------------------------------

export type FileValidation =
  | { readonly ok: true; readonly value: unknown; readonly secrets: readonly string[] }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

/**
 * Reads one file with the pipeline's safety rules and validates it (or, given `value`, an in-memory value
 * reported under the name `file`) against one schema file. No watcher, no store.
 */
export async function validateOnce(
  file: string,
  schemaFile: string,
  options: { value?: unknown; useDefaults?: boolean; maxFileBytes?: number; workerThresholdBytes?: number } = {},
): Promise<FileValidation> {
  const registry = new SchemaRegistry({ schemaDir: path.dirname(schemaFile), useDefaults: options.useDefaults ?? false, displayPath });
  const name = registry.nameOfFile(schemaFile);
  if (name === undefined) throw new HotconfError('E_OPTIONS', `not a schema file (*${SCHEMA_SUFFIX}): ${schemaFile}`);
  await registry.reload([schemaFile]);
  const shown = 'value' in options ? file : displayPath(file);
  await using parser = new ConfigParser(
    options.workerThresholdBytes === undefined ? {} : { workerThresholdBytes: options.workerThresholdBytes },
  );
  try {
    const parsed =
      'value' in options
        ? parseConfig(JSON.stringify(options.value ?? null), 'json', shown)
        : await parser.parse((await readStable(file, { maxFileBytes: options.maxFileBytes ?? OPTION_DEFAULTS.maxFileBytes, displayPath: shown })).bytes, formatOfExt(file), shown);
    const value = 'value' in options ? options.value : parsed.value;
    return await registry.validateAsync(name, value, parsed, shown);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [err] };
    throw err;
  }
}
