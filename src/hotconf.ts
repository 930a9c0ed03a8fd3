// createHotconf: the thin facade that wires a source (a watched directory, an etcd prefix), the pipeline
// (read → parse → validate → batch policy → commit) and the store (versions, subscribers), and owns their
// lifecycle. Everything a library user calls is here; how each stage works lives in its own module
// (ARCHITECTURE.md).
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { Owner } from './async.js';
import { HotconfError, InitialLoadError, type ConfigErrorJSON } from './errors.js';
import { ConfigParser } from './load/worker.js';
import { displayPath } from './names.js';
import { checkRuntimeOptions, resolveOptions, type HotconfOptions, type ResolvedOptions, type RuntimeOptions } from './options.js';
import { Pipeline, type BatchResult, type ConfigState, type PipelineSettings, type SourceExcerpts } from './pipeline/index.js';
import type { EtcdSourceStatus } from './source/etcd/client.js';
import { assertDirectories, FilesSource, type FilesSourceStatus } from './source/files/index.js';
import type { FleetStatus, Source, SourceStatusBase } from './source/index.js';
import { Store, type Change, type ChangeHandler, type DeepReadonly, type Snapshot, type StoreStats, type Unsubscribe } from './store/index.js';
import { SchemaRegistry } from './validate/index.js';

export type { BatchPolicy, HotconfOptions, RuntimeOptions } from './options.js';
export type { BatchResult, ConfigState } from './pipeline/index.js';
export type { FleetInstance, FleetStatus } from './source/index.js';

export type { DeepReadonly };
export type { SourceExcerpt, SourceExcerpts } from './pipeline/index.js';

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
  /** The first problem, and all of them (at most `maxErrorsPerConfig`, then one `E_MORE_ERRORS` counting the rest). */
  readonly error: ConfigErrorJSON | undefined;
  readonly errors: readonly ConfigErrorJSON[];
  /** For a `pending` config: the configs whose errors hold it back (`all-or-nothing`). */
  readonly heldBy?: readonly string[];
  /** When the state last changed (ms since the epoch). */
  readonly since: number;
  /** With `status({ excerpts: true })`, for an `error` config: the lines of the refused document around its
   *  errors' positions, secret values masked by schema, or why they are withheld. */
  readonly excerpts?: SourceExcerpts;
}

/** Where the configs come from, and whether that source is reachable (a source of the `source` option adds
 *  its own fields to `kind` and `connected`). */
export type SourceStatus = FilesSourceStatus | EtcdSourceStatus | SourceStatusBase;

export interface HotconfStatus {
  readonly version: number;
  /** The store's identity (random per process): a version means something only with its epoch. */
  readonly epoch: string;
  /** The etcd revision the snapshot reflects; undefined for files. */
  readonly sourceRevision: string | undefined;
  /** The fleet release the snapshot serves (etcd release mode); undefined otherwise. */
  readonly sourceRelease: number | undefined;
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

export interface HotconfHealth {
  /** Initial load done, not closed, and no batch stuck for longer than `stallMs`. */
  readonly healthy: boolean;
  /** How long the batch being processed has been running, in ms; undefined when idle. */
  readonly batchInFlightMs: number | undefined;
  /** When the last batch finished (ms since the epoch); undefined before the first. */
  readonly lastBatchAt: number | undefined;
}

/** A running hotconf: the public face of the pipeline. `T` maps config names to their value types. */
export interface Hotconf<T extends Record<string, unknown> = Record<string, unknown>> extends AsyncDisposable {
  /** Current version; strictly increases with each commit. 0 before anything is committed. */
  readonly version: number;
  /** The current deep-frozen value of a config, or undefined. O(1). */
  get<K extends keyof T & string>(name: K): DeepReadonly<T[K]> | undefined;
  /** The current immutable snapshot: safe to hold, never changes. */
  snapshot(): Snapshot<T>;
  /** Subscribes to committed changes: all, one name, several names, or a selector of the snapshot. */
  onConfigChange(handler: ChangeHandler<T>): Unsubscribe;
  onConfigChange(name: (keyof T & string) | readonly (keyof T & string)[], handler: ChangeHandler<T>): Unsubscribe;
  onConfigChange(selector: (snapshot: Snapshot<T>) => unknown, handler: ChangeHandler<T>): Unsubscribe;
  /** Committed changes as an async iterable, from now on; a slow consumer gets them coalesced. */
  changes(options?: { signal?: AbortSignal }): AsyncIterableIterator<Change<T>> & AsyncDisposable;
  /** Per-config state: ok, or the error that keeps the last good value live. `excerpts`: add each refused
   *  config's source lines around its errors (secrets masked). */
  status(options?: { excerpts?: boolean }): HotconfStatus;
  /** Full rescan: every config and schema is read again (etcd: the schemas, and the whole prefix in one range
   *  read, diffed against the store). Resolves once that batch committed or was rejected. */
  reload(): Promise<ReloadResult>;
  /** Changes the options that are safe to change while running; the next batch uses them. */
  update(options: RuntimeOptions): void;
  /** Subscriber counters from the store: failed handler calls, live subscribers and `changes()` iterators. */
  readonly stats: StoreStats;
  /** Calls `listener` after every processed batch, committed or not. Returns the unsubscribe function. */
  onBatch(listener: (result: BatchResult) => void): Unsubscribe;
  /** Resolves once a batch has gone all the way through the pipeline: proof that it still moves. */
  ping(): Promise<void>;
  /** The fleet this instance belongs to (etcd release mode: the head and every live instance), read now;
   *  undefined for a directory or a prefix of plain keys. Rejects when etcd cannot be read. */
  fleet(): Promise<FleetStatus | undefined>;
  /** Liveness of the pipeline, for watchdogs: unhealthy when a batch has been stuck for `stallMs` (default 30 s). */
  health(stallMs?: number): HotconfHealth;
  /** Stops the source, finishes the batch in flight, ends every `changes()` iterator and waits (bounded)
   *  for handlers in flight. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the source the options name. The one place that knows every kind of source: a new source adds
 * one line here. Loaded on demand, so that a directory user never loads the etcd client.
 */
async function openSource(o: ResolvedOptions, logger: Logger): Promise<Source<SourceStatus>> {
  if (o.source) return o.source({ logger });
  if (o.etcd) return (await import('./source/etcd/index.js')).EtcdSource.open(o.etcd, logger.child({ module: 'etcd' }));
  return FilesSource.open({ ...o, configDir: o.configDir!, logger });
}

class Instance<T extends Record<string, unknown>> implements Hotconf<T> {
  readonly #o: ResolvedOptions;
  readonly #log: Logger;
  readonly #store: Store;
  readonly #pipeline: Pipeline;
  /** What close() releases, in reverse order of acquisition. */
  readonly #owner = new Owner();
  #settings: PipelineSettings;
  #source: Source<SourceStatus> | undefined;
  #loop: Promise<void> | undefined;
  #ready = false;

  constructor(o: ResolvedOptions, logger: Logger) {
    this.#o = o;
    this.#log = logger;
    this.#settings = { batchPolicy: o.batchPolicy, maxFileBytes: o.maxFileBytes, keepOnDelete: o.keepOnDelete, concurrency: o.concurrency, maxErrorsPerConfig: o.maxErrorsPerConfig, keepSource: o.keepSource };
    const schemaDir = o.schemaDir === undefined ? undefined : path.resolve(o.schemaDir);
    const registry = new SchemaRegistry({
      schemaDir: schemaDir ?? (o.configDir === undefined ? process.cwd() : path.resolve(o.configDir)),
      useDefaults: o.useDefaults,
      schemaStrict: o.schemaStrict,
      unknownFormats: o.unknownFormats,
      maxSchemaBytes: o.maxSchemaBytes,
      ...(o.formats ? { formats: o.formats } : {}),
      logger: logger.child({ module: 'validate' }),
      displayPath,
      maxErrors: o.maxErrorsPerConfig,
    });
    this.#store = this.#owner.add(new Store({ logger: logger.child({ module: 'store' }), closeTimeoutMs: o.closeTimeoutMs }));
    const parser = this.#owner.add(new ConfigParser({ workerThresholdBytes: o.workerThresholdBytes }));
    this.#pipeline = new Pipeline({
      store: this.#store,
      stages: { parser, registry, maxDepth: o.maxDepth, maxAliasCount: o.maxAliasCount, requireSchema: o.requireSchema },
      schemaDir,
      settings: () => this.#settings,
      logger,
      check: o.check,
    });
    // The loop ends when the source closes (registered next): wait for the batch in flight before the stages go.
    this.#owner.add(() => this.#loop);
  }

  /** Opens the source, loads and commits everything valid, then follows the source. */
  async start(): Promise<void> {
    try {
      await assertDirectories(undefined, this.#o.schemaDir);
      const source = (this.#source = await openSource(this.#o, this.#log));
      this.#owner.add(source);
      // The initial batch applies what is valid; unless told to start with that, any error rejects start-up.
      // A fleet release is applied whole or not at all, even at start.
      const errors = await this.#pipeline.process(source, source.initial, source.initial.release === undefined ? 'per-file' : 'all-or-nothing');
      if (errors.length > 0 && !this.#o.startWithValid) throw new InitialLoadError(errors);
      this.#loop = this.#pipeline.run(source);
    } catch (err) {
      await this.#owner.close();
      throw err;
    }
    this.#ready = true;
    const snap = this.#store.snapshot();
    this.#log.info({ version: snap.version, sourceRevision: snap.sourceRevision, ...(snap.sourceRelease === undefined ? {} : { release: snap.sourceRelease }), configs: snap.configs.size, errors: this.status().errors }, 'hotconf ready');
  }

  get version(): number {
    return this.#store.version;
  }

  get<K extends keyof T & string>(name: K): DeepReadonly<T[K]> | undefined {
    return this.#store.get(name) as DeepReadonly<T[K]> | undefined;
  }

  // The store is untyped: T is the caller's declaration (the schemas make it true), applied by the casts below.

  snapshot(): Snapshot<T> {
    return this.#store.snapshot() as Snapshot<T>;
  }

  onConfigChange(handler: ChangeHandler<T>): Unsubscribe;
  onConfigChange(name: (keyof T & string) | readonly (keyof T & string)[], handler: ChangeHandler<T>): Unsubscribe;
  onConfigChange(selector: (snapshot: Snapshot<T>) => unknown, handler: ChangeHandler<T>): Unsubscribe;
  onConfigChange(a: ChangeHandler<T> | string | readonly string[] | ((snapshot: Snapshot<T>) => unknown), b?: ChangeHandler<T>): Unsubscribe {
    if (b === undefined) return this.#store.onConfigChange(a as ChangeHandler);
    return this.#store.onConfigChange(a as (snapshot: Snapshot) => unknown, b as ChangeHandler);
  }

  changes(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<Change<T>> & AsyncDisposable {
    return this.#store.changes(options) as AsyncIterableIterator<Change<T>> & AsyncDisposable;
  }

  status(options: { excerpts?: boolean } = {}): HotconfStatus {
    const snap = this.#store.snapshot();
    const problems = this.#pipeline.problems;
    const names = new Set([...snap.configs.keys(), ...problems.keys()]);
    const configs: ConfigStatus[] = [...names].sort().map((name) => {
      const entry = snap.configs.get(name);
      const problem = problems.get(name);
      const errors = (problem?.errors ?? []).map((e) => e.toJSON());
      return {
        name,
        state: problem?.state ?? 'ok',
        file: problem?.file ?? (entry ? displayPath(entry.path) : undefined),
        hash: entry?.hash,
        version: entry?.version,
        error: errors[0],
        errors,
        ...(problem?.heldBy ? { heldBy: problem.heldBy } : {}),
        since: problem?.since ?? snap.committedAt,
        ...(options.excerpts === true && problem?.excerpts ? { excerpts: problem.excerpts } : {}),
      };
    });
    return {
      version: snap.version,
      epoch: snap.epoch,
      sourceRevision: snap.sourceRevision,
      sourceRelease: snap.sourceRelease,
      source: this.#source!.status(),
      ready: this.#ready && !this.#owner.closed,
      errors: configs.filter((c) => c.state === 'error').length,
      configs,
    };
  }

  async reload(): Promise<ReloadResult> {
    await this.#running().resync();
    return { version: this.version, errors: this.#pipeline.currentErrors() };
  }

  update(options: RuntimeOptions): void {
    checkRuntimeOptions(options);
    const { batchPolicy, maxFileBytes, keepOnDelete, debounceMs, maxBatchDelayMs, verifyIntervalMs } = options;
    this.#settings = {
      ...this.#settings,
      ...(batchPolicy === undefined ? {} : { batchPolicy }),
      ...(maxFileBytes === undefined ? {} : { maxFileBytes }),
      ...(keepOnDelete === undefined ? {} : { keepOnDelete }),
    };
    this.#source?.setTiming?.({ debounceMs, maxBatchDelayMs, verifyIntervalMs });
    this.#log.info({ options }, 'options updated');
  }

  get stats(): StoreStats {
    return this.#store.stats;
  }

  onBatch(listener: (result: BatchResult) => void): Unsubscribe {
    return this.#pipeline.onBatch(listener);
  }

  async ping(): Promise<void> {
    await this.#running().ping();
  }

  async fleet(): Promise<FleetStatus | undefined> {
    const source = this.#running();
    return source.fleet ? source.fleet() : undefined;
  }

  health(stallMs = 30_000): HotconfHealth {
    const batchInFlightMs = this.#pipeline.batchInFlightMs;
    return {
      healthy: this.#ready && !this.#owner.closed && (batchInFlightMs ?? 0) < stallMs,
      batchInFlightMs,
      lastBatchAt: this.#pipeline.lastBatchAt,
    };
  }

  async close(): Promise<void> {
    const first = !this.#owner.closed;
    await this.#owner.close();
    if (first) this.#log.debug('closed');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #running(): Source<SourceStatus> {
    if (this.#owner.closed || !this.#source) throw new HotconfError('E_CLOSED', 'hotconf is closed');
    return this.#source;
  }
}

const require = createRequire(import.meta.url);

/** The logger when none is given: pino, JSON lines on stderr at level info. */
function defaultLogger(): Logger {
  const { pino } = require('pino') as typeof import('pino');
  return pino({ name: 'hotconf', level: 'info' }, pino.destination(2));
}

/**
 * Starts hotconf: loads every config, validates it, and watches for changes. Resolves after the initial load;
 * rejects with an {@link InitialLoadError} listing every problem when the initial config is invalid (unless
 * `startWithValid`). `await using hot = await createHotconf(…)` closes it at the end of the scope.
 */
export async function createHotconf<T extends Record<string, unknown> = Record<string, unknown>>(options: HotconfOptions): Promise<Hotconf<T>> {
  const o = resolveOptions(options);
  // pino (~30 modules) is loaded only for this default logger: an application that passes its own never loads it here.
  const logger = o.logger ?? defaultLogger();
  const hot = new Instance<T>(o, logger);
  await hot.start();
  if (o.signal) {
    const signal = o.signal;
    const onAbort = () => void hot.close().catch((err: unknown) => logger.error({ err }, 'close failed'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return hot;
}
