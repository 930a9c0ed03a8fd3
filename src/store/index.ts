// The end of the pipeline: validated configs enter through commit(), one atomic swap per batch, and leave as
// immutable, versioned snapshots that readers may hold forever. Every subscriber and every changes() iterator
// follows the versions at its own pace: a slow or failing one never delays the commit or anyone else, and
// one that falls behind is handed a single coalesced change to the latest version, never an older one.

import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { settleWithin } from '../async.js';
import { HotconfError } from '../errors.js';
import { ChangeIterator } from './changes.js';

export type { Logger } from 'pino';

const require = createRequire(import.meta.url);
/** pino at level silent, loaded only when a store is made without a logger. */
const silentLogger = (): Logger => (require('pino') as typeof import('pino')).pino({ level: 'silent' });

export interface ConfigEntry<V = unknown> {
  readonly name: string;
  /** Deep-frozen by the store at commit. */
  readonly value: V;
  /** Content hash, computed by the caller; the only thing the store compares. */
  readonly hash: string;
  /** Where it came from (file path / source key). */
  readonly path: string;
  /** The version in which this entry last changed. */
  readonly version: number;
  /** JSON pointers of secret values inside `value` (for redaction); [] if none. */
  readonly secrets: readonly string[];
  /** The source's own text, when kept (an application check, `publish.format: source`); undefined otherwise. It
   *  holds secret values as written: never log or serve it. */
  readonly source?: SourceText | undefined;
}

/** A config as its source holds it: the file (or key) name relative to the source's root (`prometheus.yml`,
 *  `db/primary.yaml`) and its exact text (configs are valid UTF-8, so the text gives back the exact bytes). */
export interface SourceText {
  readonly file: string;
  readonly text: string;
}

/**
 * Values of configs as the caller declared them, deeply read-only (the store deep-freezes every value at commit).
 * `DeepReadonly<unknown>` is `unknown`: an untyped caller gets values it must narrow, never `any`.
 */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends object
    ? // On an array this mapped type is a readonly array, and on a tuple (`[number, string]`, what a schema's
      // `prefixItems` or `minItems` generates) a readonly tuple that keeps each position's type.
      { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/**
 * An immutable version of every config. `T` maps config names to the value types the caller declares
 * (`createHotconf<{ app: AppConfig }>`; the schemas, not the store, make that true); the default types every name
 * with an `unknown` value. `T` types get() only: `configs` stays keyed by string with `unknown` values, because it
 * also holds whatever configs exist that `T` does not declare.
 */
export interface Snapshot<T extends Record<string, unknown> = Record<string, unknown>> {
  /** 0 = the empty initial snapshot. */
  readonly version: number;
  /** The store's identity, random per store (so per process): versions restart at 1 in every new store, and
   *  `epoch` + `version` together name one snapshot wherever it is seen (SSE ids, long-polls). */
  readonly epoch: string;
  /** Every config of this version, in the order the names were first added. A read-only Map that shares its
   *  entries with the other versions: to clone it or send it to another thread, copy it (`new Map(configs)`). */
  readonly configs: ReadonlyMap<string, ConfigEntry>;
  /** Date.now() of the commit that made this version. */
  readonly committedAt: number;
  /** The source's revision (e.g. etcd's) this snapshot reflects; undefined for files. */
  readonly sourceRevision: string | undefined;
  /** The fleet release (etcd release mode) this snapshot serves; undefined otherwise. */
  readonly sourceRelease: number | undefined;
  /** The config's deep-frozen value, or undefined; O(1). */
  get<K extends keyof T & string>(name: K): DeepReadonly<T[K]> | undefined;
}

/** `changed` and `removed` are plain names: they may include configs that `T` does not declare. */
export interface Change<T extends Record<string, unknown> = Record<string, unknown>> {
  /** === current.version */
  readonly version: number;
  readonly previous: Snapshot<T>;
  readonly current: Snapshot<T>;
  /** Names added or whose hash changed, sorted. */
  readonly changed: readonly string[];
  /** Names present in previous and absent in current, sorted. */
  readonly removed: readonly string[];
}

export interface EntryInput {
  name: string;
  value: unknown;
  hash: string;
  path: string;
  secrets?: readonly string[];
  source?: SourceText | undefined;
}

export interface CommitInput {
  set?: Iterable<EntryInput>;
  remove?: Iterable<string>;
  sourceRevision?: string;
  /** The fleet release the commit serves (etcd release mode), given with `sourceRevision`, as it is. */
  sourceRelease?: number;
}

export type ChangeHandler<T extends Record<string, unknown> = Record<string, unknown>> = (change: Change<T>) => void | Promise<void>;

/** Ends a subscription; calling it twice is harmless. Also a `Disposable`, for `using`. */
export type Unsubscribe = (() => void) & Disposable;

export interface StoreOptions {
  /** pino logger for handler failures and a slow close(). Default: a silent logger (pino({ level: 'silent' })). */
  logger?: Logger;
  /** How long close() waits for handler deliveries in flight, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /** Called for each handler (or selector) failure, for metrics. Default: none. */
  onSubscriberError?: (err: unknown) => void;
}

export interface StoreStats {
  /** Handler and selector failures since the store was created. */
  readonly subscriberErrors: number;
  /** Live onConfigChange() subscriptions. */
  readonly subscribers: number;
  /** Live changes() iterators. */
  readonly iterators: number;
}

/** In an overlay: the name is gone from the base. */
const GONE = Symbol('gone');
/** In an overlay: a name of the base replaced in place, or a name added after the base's (`appended`). */
type Overlaid = { readonly entry: ConfigEntry; readonly appended: boolean } | typeof GONE;

/**
 * A snapshot's configs: a Map subclass (instanceof Map; set/delete/clear throw; frozen) whose entries live in a
 * structure shared between versions, so that a commit costs what it changes, not what exists (measured: a
 * one-config commit copied 10,000 entries, ~1 ms, on every change). `base` is a plain Map that is never
 * changed once built, shared by the successive versions; `overlay` holds what changed since (a replaced entry,
 * a name gone, a name added after the base's), copied per commit and folded into a new base once it grows past
 * ~√size entries (at least 32), so a commit copies O(√n) entries amortised. Every read of the Map interface
 * (get, has, size, iteration in Map order: names in the order they were first added, replaced in place, added
 * last) answers from that structure; util.inspect shows the entries. Map's own internal table stays empty: code
 * that reads a Map through Map.prototype on another receiver, or clones it (structuredClone), must copy it
 * first: `new Map(snapshot.configs)`.
 */
class ConfigMap extends Map<string, ConfigEntry> {
  readonly #base: ReadonlyMap<string, ConfigEntry>;
  readonly #overlay: ReadonlyMap<string, Overlaid>;
  readonly #size: number;

  private constructor(base: ReadonlyMap<string, ConfigEntry>, overlay: ReadonlyMap<string, Overlaid>, size: number) {
    super();
    this.#base = base;
    this.#overlay = overlay;
    this.#size = size;
    Object.freeze(this);
  }

  static empty(): ConfigMap {
    return new ConfigMap(new Map(), new Map(), 0);
  }

  /** This map with `updates` applied (a name it lacks is added last, as Map.set would) and `removed` left out. */
  with(updates: ReadonlyMap<string, ConfigEntry>, removed: ReadonlySet<string>): ConfigMap {
    const overlay = new Map(this.#overlay);
    let size = this.#size;
    for (const [name, entry] of updates) {
      if (this.has(name)) {
        const was = overlay.get(name);
        overlay.set(name, { entry, appended: was !== undefined && was !== GONE && was.appended });
      } else {
        // Added (or added again after a removal): after every name there is, in the order of adding.
        overlay.delete(name);
        overlay.set(name, { entry, appended: true });
        size++;
      }
    }
    for (const name of removed) {
      if (!this.has(name)) continue;
      if (this.#base.has(name)) overlay.set(name, GONE);
      else overlay.delete(name);
      size--;
    }
    if (overlay.size * overlay.size <= Math.max(1024, this.#base.size)) return new ConfigMap(this.#base, overlay, size);
    const next = new ConfigMap(this.#base, overlay, size);
    return new ConfigMap(new Map(next.entries()), new Map(), size);
  }

  override get(name: string): ConfigEntry | undefined {
    const o = this.#overlay.get(name);
    if (o === undefined) return this.#base.get(name);
    return o === GONE ? undefined : o.entry;
  }

  override has(name: string): boolean {
    const o = this.#overlay.get(name);
    return o === undefined ? this.#base.has(name) : o !== GONE;
  }

  override get size(): number {
    return this.#size;
  }

  override *entries(): MapIterator<[string, ConfigEntry]> {
    const overlay = this.#overlay;
    for (const [name, entry] of this.#base) {
      const o = overlay.get(name);
      if (o === undefined) yield [name, entry];
      else if (o !== GONE && !o.appended) yield [name, o.entry];
    }
    for (const [name, o] of overlay) if (o !== GONE && o.appended) yield [name, o.entry];
  }

  override [Symbol.iterator](): MapIterator<[string, ConfigEntry]> {
    return this.entries();
  }

  override *keys(): MapIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  override *values(): MapIterator<ConfigEntry> {
    for (const [, entry] of this.entries()) yield entry;
  }

  override forEach(callback: (value: ConfigEntry, key: string, map: Map<string, ConfigEntry>) => void, thisArg?: unknown): void {
    for (const [name, entry] of this.entries()) callback.call(thisArg, entry, name, this);
  }

  override set(_name: string, _entry: ConfigEntry): this {
    throw new TypeError('a snapshot is immutable: configs cannot be set');
  }

  override delete(_name: string): boolean {
    throw new TypeError('a snapshot is immutable: configs cannot be deleted');
  }

  override clear(): void {
    throw new TypeError('a snapshot is immutable: configs cannot be cleared');
  }

  /** util.inspect: the entries, as for a Map. */
  [Symbol.for('nodejs.util.inspect.custom')](_depth: number, options: object, inspect: (value: unknown, options: object) => string): string {
    return inspect(new Map(this.entries()), options);
  }
}

class FrozenSnapshot implements Snapshot {
  readonly version: number;
  readonly epoch: string;
  readonly configs: ConfigMap;
  readonly committedAt: number;
  readonly sourceRevision: string | undefined;
  readonly sourceRelease: number | undefined;

  constructor(epoch: string, version: number, configs: ConfigMap, committedAt: number, sourceRevision: string | undefined, sourceRelease: number | undefined) {
    this.epoch = epoch;
    this.version = version;
    this.configs = configs;
    this.committedAt = committedAt;
    this.sourceRevision = sourceRevision;
    this.sourceRelease = sourceRelease;
    Object.freeze(this);
  }

  get(name: string): unknown {
    return this.configs.get(name)?.value;
  }
}

interface Subscriber {
  readonly handler: ChangeHandler;
  readonly isRelevant: (change: Change) => boolean;
  /** The last snapshot this subscriber was shown (or had nothing relevant in). */
  lastSeen: Snapshot;
  /** False once unsubscribed: never called again, even with a delivery pending. */
  active: boolean;
  /** True while its delivery loop runs, so that there is never more than one loop (one call) at a time. */
  running: boolean;
}

export class Store implements AsyncDisposable {
  readonly #logger: Logger;
  readonly #closeTimeoutMs: number;
  readonly #onSubscriberError: ((err: unknown) => void) | undefined;
  readonly #subscribers = new Set<Subscriber>();
  readonly #iterators = new Set<ChangeIterator>();
  /** Delivery loops in flight; close() waits for them (bounded). */
  readonly #deliveries = new Set<Promise<void>>();
  #current: FrozenSnapshot;
  /** The latest commit's Change, handed as is to everyone who saw exactly its previous snapshot. */
  #lastChange: Change | undefined;
  #subscriberErrors = 0;
  #closing: Promise<void> | undefined;

  constructor(options: StoreOptions = {}) {
    this.#logger = options.logger ?? silentLogger();
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.#onSubscriberError = options.onSubscriberError;
    if (!(this.#closeTimeoutMs >= 0)) throw new HotconfError('E_OPTIONS', 'closeTimeoutMs must be a number >= 0');
    this.#current = new FrozenSnapshot(randomBytes(8).toString('hex'), 0, ConfigMap.empty(), Date.now(), undefined, undefined);
  }

  get version(): number {
    return this.#current.version;
  }

  snapshot(): Snapshot {
    return this.#current;
  }

  get(name: string): unknown {
    return this.#current.get(name);
  }

  get stats(): StoreStats {
    return Object.freeze({
      subscriberErrors: this.#subscriberErrors,
      subscribers: this.#subscribers.size,
      iterators: this.#iterators.size,
    });
  }

  /**
   * Atomic swap: builds the whole next snapshot aside, then replaces the current one in a single assignment.
   * Returns the Change, or undefined when nothing differs (every set hash equals the current one and no removed
   * name exists): then no version is used and nobody is notified. Entries whose hash is unchanged keep their old
   * ConfigEntry object, so a value keeps its identity across versions.
   *
   * sourceRevision: a commit without changes that carries a new revision replaces the current snapshot with one
   * of the same version and configs and the new revision, and notifies nobody (the content is what subscribers
   * follow; the revision only says which source state it reflects). A commit with changes takes the given
   * revision, or undefined when none is given. `sourceRelease` goes with the revision, the same way.
   *
   * Throws HotconfError E_CLOSED after close(), E_OPTIONS when a name is set twice or both set and removed
   * (the store is left untouched).
   */
  commit(input: CommitInput): Change | undefined {
    if (this.#closing !== undefined) throw new HotconfError('E_CLOSED', 'the store is closed');
    const previous = this.#current;
    const version = previous.version + 1;
    // Only what changes is collected; the next map shares what did not change with this one (ConfigMap).
    const updates = new Map<string, ConfigEntry>();
    const gone = new Set<string>();
    const changed: string[] = [];
    const removed: string[] = [];
    const seen = new Set<string>();

    for (const entry of input.set ?? []) {
      if (seen.has(entry.name)) throw new HotconfError('E_OPTIONS', `commit: config "${entry.name}" is set twice`);
      seen.add(entry.name);
      if (previous.configs.get(entry.name)?.hash === entry.hash) continue;
      updates.set(
        entry.name,
        Object.freeze({
          name: entry.name,
          value: deepFreeze(entry.value),
          hash: entry.hash,
          path: entry.path,
          version,
          secrets: Object.freeze([...(entry.secrets ?? [])]),
          ...(entry.source ? { source: Object.freeze({ file: entry.source.file, text: entry.source.text }) } : {}),
        }),
      );
      changed.push(entry.name);
    }
    for (const name of input.remove ?? []) {
      if (seen.has(name)) throw new HotconfError('E_OPTIONS', `commit: config "${name}" is both set and removed`);
      if (previous.configs.has(name) && !gone.has(name)) {
        gone.add(name);
        removed.push(name);
      }
    }

    if (changed.length === 0 && removed.length === 0) {
      const revision = input.sourceRevision;
      const release = input.sourceRelease;
      if (revision !== undefined && (revision !== previous.sourceRevision || release !== previous.sourceRelease)) {
        this.#current = new FrozenSnapshot(previous.epoch, previous.version, previous.configs, previous.committedAt, revision, release);
      }
      return undefined;
    }

    const current = new FrozenSnapshot(previous.epoch, version, previous.configs.with(updates, gone), Date.now(), input.sourceRevision, input.sourceRelease);
    const change: Change = Object.freeze({
      version,
      previous,
      current,
      changed: Object.freeze(changed.sort()),
      removed: Object.freeze(removed.sort()),
    });
    this.#current = current;
    this.#lastChange = change;

    for (const sub of this.#subscribers) {
      if (!sub.running) {
        sub.running = true;
        this.#track(this.#deliver(sub));
      }
    }
    for (const iterator of this.#iterators) iterator.wake();
    return change;
  }

  /**
   * Calls `handler` after each commit, never inside commit(), one call at a time, awaited; a subscriber still busy
   * when newer versions commit receives one change to the latest version next. With a name or list of names, only
   * changes that touch one of them; with a selector, only changes where its result differs (util.isDeepStrictEqual).
   */
  onConfigChange(handler: ChangeHandler): Unsubscribe;
  onConfigChange(name: string | readonly string[], handler: ChangeHandler): Unsubscribe;
  onConfigChange(selector: (snapshot: Snapshot) => unknown, handler: ChangeHandler): Unsubscribe;
  onConfigChange(
    filterOrHandler: string | readonly string[] | ((snapshot: Snapshot) => unknown) | ChangeHandler,
    maybeHandler?: ChangeHandler,
  ): Unsubscribe {
    if (this.#closing !== undefined) throw new HotconfError('E_CLOSED', 'the store is closed');
    let handler: ChangeHandler;
    let isRelevant: (change: Change) => boolean;
    if (maybeHandler === undefined) {
      if (typeof filterOrHandler !== 'function') {
        throw new HotconfError('E_OPTIONS', 'onConfigChange: a handler function is required');
      }
      handler = filterOrHandler as ChangeHandler;
      isRelevant = () => true;
    } else if (typeof filterOrHandler === 'function') {
      const selector = filterOrHandler as (snapshot: Snapshot) => unknown;
      handler = maybeHandler;
      isRelevant = (change) => !isDeepStrictEqual(selector(change.previous), selector(change.current));
    } else {
      const names = new Set(typeof filterOrHandler === 'string' ? [filterOrHandler] : filterOrHandler);
      handler = maybeHandler;
      isRelevant = (change) => change.changed.some((n) => names.has(n)) || change.removed.some((n) => names.has(n));
    }

    const sub: Subscriber = { handler, isRelevant, lastSeen: this.#current, active: true, running: false };
    this.#subscribers.add(sub);
    const unsubscribe = (): void => {
      sub.active = false;
      this.#subscribers.delete(sub);
    };
    return Object.assign(unsubscribe, { [Symbol.dispose]: unsubscribe });
  }

  /**
   * The committed changes from now on, as an async iterator with the same coalescing as subscribers: each next()
   * yields the change from the last yielded snapshot to the current one, or waits for a commit. Ends (done, no
   * error) on return() (a `break`), on the signal's abort, and on close().
   */
  changes(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<Change> & AsyncDisposable {
    const { signal } = options;
    const onAbort = (): void => iterator.end();
    const iterator = new ChangeIterator(this.#current, {
      current: () => this.#current,
      changeBetween: (from, to) => this.#changeBetween(from, to),
      release: (it) => {
        this.#iterators.delete(it);
        signal?.removeEventListener('abort', onAbort);
      },
    });
    if (this.#closing !== undefined || signal?.aborted === true) {
      iterator.end();
    } else {
      this.#iterators.add(iterator);
      signal?.addEventListener('abort', onAbort, { once: true });
    }
    return iterator;
  }

  /**
   * Idempotent. Refuses further commits, ends every changes() iterator, then waits for handler deliveries in flight,
   * at most closeTimeoutMs: a handler that never settles is logged (warn) and left behind, never called again.
   * A handler that awaits close() itself therefore waits the full timeout.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    for (const iterator of [...this.#iterators]) iterator.end();
    if (this.#deliveries.size > 0) {
      const drained = await settleWithin(Promise.allSettled([...this.#deliveries]), this.#closeTimeoutMs);
      if (!drained) {
        this.#logger.warn(
          { running: this.#deliveries.size, timeoutMs: this.#closeTimeoutMs },
          'close: subscribers still running, not waiting longer',
        );
      }
    }
    for (const sub of this.#subscribers) sub.active = false;
    this.#subscribers.clear();
  }

  /** One subscriber's delivery loop: runs until the subscriber has seen the current snapshot. */
  async #deliver(sub: Subscriber): Promise<void> {
    try {
      // commit() returns before any handler runs.
      await Promise.resolve();
      while (sub.active && sub.lastSeen.version < this.#current.version) {
        const current = this.#current;
        const change = this.#changeBetween(sub.lastSeen, current);
        sub.lastSeen = current;
        if (change === undefined) continue;
        try {
          if (sub.isRelevant(change) && sub.active) await sub.handler(change);
        } catch (err) {
          this.#subscriberFailed(err, change.version);
        }
      }
    } finally {
      sub.running = false;
    }
  }

  #subscriberFailed(err: unknown, version: number): void {
    this.#subscriberErrors++;
    this.#logger.error({ err, version }, 'subscriber failed');
    try {
      this.#onSubscriberError?.(err);
    } catch (hookErr) {
      this.#logger.error({ err: hookErr }, 'onSubscriberError failed');
    }
  }

  /** The one place delivery promises go: caught, logged, and kept for close() until settled. */
  #track(delivery: Promise<void>): void {
    const tracked: Promise<void> = delivery
      .catch((err: unknown) => this.#logger.error({ err }, 'delivery loop failed'))
      .finally(() => this.#deliveries.delete(tracked));
    this.#deliveries.add(tracked);
  }

  /**
   * The change from one snapshot to a later one, or undefined when their configs are the same (a name added and
   * removed again while a subscriber was busy): an empty change is never delivered.
   */
  #changeBetween(from: Snapshot, to: Snapshot): Change | undefined {
    const last = this.#lastChange;
    if (last !== undefined && last.previous === from && last.current === to) return last;
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, entry] of to.configs) {
      if (from.configs.get(name)?.hash !== entry.hash) changed.push(name);
    }
    for (const name of from.configs.keys()) {
      if (!to.configs.has(name)) removed.push(name);
    }
    if (changed.length === 0 && removed.length === 0) return undefined;
    return Object.freeze({
      version: to.version,
      previous: from,
      current: to,
      changed: Object.freeze(changed.sort()),
      removed: Object.freeze(removed.sort()),
    });
  }
}

/**
 * Freezes `value` and everything reachable from it through own data properties, iteratively (a 10k-deep value
 * cannot overflow the stack), visiting shared and cyclic references once. Getters are not called. Functions are
 * left alone (freezing one would reach its prototype, shared by all its instances), and so are typed arrays and
 * other ArrayBuffer views (the engine refuses to freeze them); parsed YAML/JSON contains neither.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  const seen = new Set<object>([value]);
  const stack: object[] = [value];
  for (let obj = stack.pop(); obj !== undefined; obj = stack.pop()) {
    if (ArrayBuffer.isView(obj)) continue;
    for (const key of Reflect.ownKeys(obj)) {
      const child: unknown = Object.getOwnPropertyDescriptor(obj, key)?.value;
      if (typeof child === 'object' && child !== null && !seen.has(child)) {
        seen.add(child);
        stack.push(child);
      }
    }
    Object.freeze(obj);
  }
  return value;
}
