// The files source: a directory of configs (and the schema directory) watched by DirWatcher. Watcher events
// are hints, not truth (DESIGN.md point 4): this module remembers what was read by file identity (dev, inode,
// size, mtime, ctime), turns each batch of hinted paths and directories into the config names whose files
// differ from that memory, re-stats what a batch read once the pipeline is done with it, and looks again at
// a read that was too close to the file's last change. That memory is what turns hints into convergence.
import { realpath, stat } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { mapLimit } from '../../async.js';
import { ConfigError, HotconfError, NameConflictError, ReadError } from '../../errors.js';
import { isTransient, RACY_WINDOW_MS, readStable, statIdentity, type FileIdentity } from '../../load/index.js';
import { MAX_WALK_DEPTH, walkConfigFiles } from '../../load/walk.js';
import { candidatesOf, configNameOf, displayPath, formatOf, isInside, SCHEMA_SUFFIX, toPosix } from '../../names.js';
import type { EntryRead, ReadLimits, Source, SourceBatch, SourceTiming } from '../index.js';
import { DirWatcher, type ChangeBatch } from './watcher.js';

export interface FilesSourceOptions {
  /** Directory of config files, watched recursively. */
  configDir: string;
  /** Directory of `<name>.schema.json` files, watched too (a changed schema re-validates its configs). */
  schemaDir?: string | undefined;
  debounceMs: number;
  maxBatchDelayMs: number;
  verifyIntervalMs: number;
  usePolling: boolean;
  /** Follow links whose target resolves outside `configDir` (default false: such a config is refused). */
  followExternalLinks?: boolean | undefined;
  logger: Logger;
}

export interface FileTreeOptions {
  /** Follow links whose target resolves outside the config dir. Default false: `E_LINK_OUTSIDE`. */
  followExternalLinks?: boolean | undefined;
  /** Hears each directory left unlisted because it lies deeper than the walk's depth limit. */
  onTooDeep?: ((dir: string) => void) | undefined;
}

/**
 * A file that reads differently from what its stat says on every try (`/proc/version` behind a link: size 0,
 * ~150 bytes read) is looked at this many more times, after 25, 50, 100 and 200 ms, before it becomes its
 * config's `E_UNSTABLE` error: bounded time (~0.4 s plus the reads), no busy loop, and an error that is
 * reported, counted and fails an initial load like any other. An in-place writer finishes well within it.
 */
const UNSTABLE_ROUNDS = 4;
const UNSTABLE_BACKOFF_MS = 25;

/** Retries of a read that failed for a passing reason (EMFILE…): after 50 ms, doubling up to 5 s, until it reads. */
const TRANSIENT_FIRST_MS = 50;
const TRANSIENT_MAX_MS = 5_000;

export interface FilesSourceStatus {
  readonly kind: 'files';
  readonly connected: true;
  readonly configDir: string;
}

/** What the sweeps of one batch listed: the directories read, and every config-like file found in them. */
interface Listing {
  readonly dirs: Set<string>;
  readonly files: Set<string>;
}

/**
 * The reconciliation of a config tree with what was read of it: names of paths, sweeps, reads. Used by the
 * watching {@link FilesSource} and, without a watcher, by `checkConfigs`.
 */
export class FileTree {
  readonly configDir: string;
  readonly schemaDir: string | undefined;
  /** What was last read (or failed to be read) per absolute path: identity key, for the convergence sweep. */
  readonly #known = new Map<string, string>();
  /** Files read (or refused after a read) since the last batch was settled: re-stat'ed then. */
  readonly #touched = new Set<string>();
  /** Stats of schema files that could not be read, finished before the batch is settled. */
  #statting: Array<Promise<void>> = [];
  #listing: Listing | undefined;
  readonly #options: FileTreeOptions;
  /** The config dir with its links resolved (it may itself be a link), once per batch: where links may point. */
  #realRoot: Promise<string> | undefined;
  /** Files whose last read failed for a passing reason, and how many times in a row. */
  readonly #transient = new Map<string, number>();

  constructor(configDir: string, schemaDir: string | undefined, options: FileTreeOptions = {}) {
    this.configDir = path.resolve(configDir);
    this.schemaDir = schemaDir === undefined ? undefined : path.resolve(schemaDir);
    this.#options = options;
  }

  /** The watched roots: the config dir, and the schema dir unless it lies inside it. */
  get roots(): string[] {
    return this.schemaDir && !isInside(this.schemaDir, this.configDir, true) ? [this.configDir, this.schemaDir] : [this.configDir];
  }

  isSchemaFile(file: string): boolean {
    return this.schemaDir !== undefined && file.endsWith(SCHEMA_SUFFIX) && isInside(file, this.schemaDir, true);
  }

  /** `config/db/primary.yaml` → `db/primary`; undefined for anything that is not a config file. */
  nameOf(file: string): string | undefined {
    if (!isInside(file, this.configDir, true)) return undefined;
    // The schema dir may lie inside the config dir: nothing in it is a config.
    if (this.schemaDir && isInside(file, this.schemaDir, true)) return undefined;
    return configNameOf(toPosix(path.relative(this.configDir, file)));
  }

  /**
   * Turns a batch of hints into config names and schema files: `paths` are hinted files, `rescan` directories
   * are listed and compared with what was last read (`force`: everything listed counts).
   */
  async resolve(batch: Pick<ChangeBatch, 'seq' | 'paths' | 'rescan' | 'reasons' | 'firstHintAt'>, force: boolean): Promise<SourceBatch & { readonly schemas: ReadonlySet<string> }> {
    const candidates = new Set<string>(batch.paths);
    const listing: Listing = { dirs: new Set(), files: new Set() };
    this.#realRoot = undefined;
    for (const dir of batch.rescan) for (const p of await this.#sweep(dir, force, listing)) candidates.add(p);
    this.#listing = listing;
    const schemas = new Set<string>();
    const names = new Set<string>();
    for (const p of candidates) {
      if (this.isSchemaFile(p)) schemas.add(p);
      else {
        const name = this.nameOf(p);
        if (name !== undefined) names.add(name);
      }
    }
    return { seq: batch.seq, names, full: false, schemas, reasons: batch.reasons, firstHintAt: batch.firstHintAt };
  }

  /** Reads the one file behind config `name` (or finds that there is none, or several). `lookAgainLater` hints
   *  the file again, after `delayMs` when given. */
  async read(name: string, limits: ReadLimits, lookAgainLater: (file: string, delayMs?: number) => void): Promise<EntryRead> {
    const base = path.join(this.configDir, ...name.split('/'));
    const candidates = candidatesOf(base);
    const present: string[] = [];
    const statErrors: ConfigError[] = [];
    const listing = this.#listing;
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
        else this.#known.delete(file);
      } else if (result.reason instanceof ConfigError) {
        present.push(file);
        statErrors.push(result.reason);
      } else {
        throw result.reason;
      }
    });
    if (present.length === 0) return { kind: 'missing' };
    if (present.length > 1) {
      await Promise.all(present.map(async (f) => this.#remember(f)));
      const files = present.map(displayPath);
      const err = new NameConflictError('E_DUPLICATE_NAME', { file: files[0]! }, `config '${name}' is defined by ${files.length} files (${files.join(', ')}); keep one`);
      return { kind: 'error', shown: files[0], errors: [err] };
    }
    const file = present[0]!;
    const shown = displayPath(file);
    if (statErrors.length > 0) {
      if (statErrors.some(isTransient)) return this.#transientError(file, shown, statErrors[0]!, lookAgainLater);
      this.#known.set(file, `error:${statErrors[0]!.code}`);
      return { kind: 'error', shown, errors: statErrors };
    }
    try {
      const outside = await this.#outsideLink(file, shown);
      if (outside) {
        await this.#remember(file);
        this.#touched.add(file);
        return { kind: 'error', shown, errors: [outside] };
      }
      const { bytes, identity, racy, superseded } = await this.#readSettled(file, shown, limits);
      this.#known.set(file, keyOf(identity));
      this.#touched.add(file);
      this.#transient.delete(file);
      if (racy || superseded) lookAgainLater(file);
      return { kind: 'bytes', bytes, format: formatOf(file) ?? 'yaml', path: file, shown };
    } catch (err) {
      if (err instanceof ReadError && err.code === 'E_NOT_FOUND') {
        this.#known.delete(file);
        this.#transient.delete(file);
        return { kind: 'missing' };
      }
      if (!(err instanceof ConfigError)) throw err;
      if (isTransient(err)) return this.#transientError(file, shown, err, lookAgainLater);
      this.#transient.delete(file);
      if (err instanceof ReadError) await this.#remember(file);
      this.#touched.add(file);
      return { kind: 'error', shown, errors: [err] };
    }
  }

  /** readStable, looked at again a few times with backoff while the file keeps changing under the read; then
   *  its E_UNSTABLE error (see UNSTABLE_ROUNDS). */
  async #readSettled(file: string, shown: string, limits: ReadLimits): ReturnType<typeof readStable> {
    for (let round = 0; ; round++) {
      try {
        return await readStable(file, { maxFileBytes: limits.maxFileBytes, displayPath: shown });
      } catch (err) {
        if (!(err instanceof ReadError && err.code === 'E_UNSTABLE')) throw err;
        if (round >= UNSTABLE_ROUNDS) {
          const detail = `never reads stable: its size or times disagree with what is read, ${UNSTABLE_ROUNDS + 1} tries over ${UNSTABLE_BACKOFF_MS * (2 ** UNSTABLE_ROUNDS - 1)} ms (a file written without pause, or not a regular file: /proc, /sys); looked at again when it changes`;
          throw new ReadError('E_UNSTABLE', { file: shown }, detail);
        }
        await delay(UNSTABLE_BACKOFF_MS * 2 ** round);
      }
    }
  }

  /** A link (of the file, or of a directory on its way) whose target resolves outside the config dir, unless
   *  following them is allowed: its config's error. The config dir itself may be a link: resolved once per batch. */
  async #outsideLink(file: string, shown: string): Promise<ReadError | undefined> {
    if (this.#options.followExternalLinks) return undefined;
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined || real === file) return undefined; // no link on the way (or the read reports why not)
    this.#realRoot ??= realpath(this.configDir).catch(() => this.configDir);
    const root = await this.#realRoot;
    if (isInside(real, root)) return undefined;
    return new ReadError('E_LINK_OUTSIDE', { file: shown }, 'is a symlink (or lies under one) whose target is outside the config directory: not followed (set followExternalLinks: true, or --follow-external-links, to follow it)');
  }

  /** A read that failed for a passing reason: its config's error for now, never remembered as what the file is
   *  (the sweep reads it again), and looked at again with backoff until it reads. */
  #transientError(file: string, shown: string, err: ConfigError, lookAgainLater: (file: string, delayMs?: number) => void): EntryRead {
    const tries = (this.#transient.get(file) ?? 0) + 1;
    this.#transient.set(file, tries);
    this.#known.set(file, 'transient');
    lookAgainLater(file, Math.min(TRANSIENT_FIRST_MS * 2 ** (tries - 1), TRANSIENT_MAX_MS));
    const detail = `${err.detail}; a passing cause: tried again until it reads`;
    return { kind: 'error', shown, errors: [new ReadError(err.code, { file: shown }, detail, { cause: err.cause })] };
  }

  /** A schema file as the pipeline read it: what was read is remembered by the identity of that version; one
   *  that could not be read, by a stat. */
  schemaRead(file: string, identity: FileIdentity | undefined, error?: ConfigError, lookAgainLater?: (file: string, delayMs?: number) => void): void {
    if (identity) {
      this.#known.set(file, keyOf(identity));
      this.#transient.delete(file);
    } else if (error && isTransient(error) && lookAgainLater) {
      // Its configs see the failure as a broken schema for now; read again until it reads.
      const tries = (this.#transient.get(file) ?? 0) + 1;
      this.#transient.set(file, tries);
      this.#known.set(file, 'transient');
      lookAgainLater(file, Math.min(TRANSIENT_FIRST_MS * 2 ** (tries - 1), TRANSIENT_MAX_MS));
    } else {
      this.#statting.push(this.#remember(file));
    }
  }

  /** After a batch: the files it read whose identity moved since (their event may be lost). */
  async moved(): Promise<string[]> {
    await Promise.all(this.#statting.splice(0));
    const files = [...this.#touched];
    this.#touched.clear();
    this.#listing = undefined;
    const moved = await mapLimit(files, 32, async (f) => ((await identityKey(f)) === this.#known.get(f) ? undefined : f));
    return moved.filter((f): f is string => f !== undefined);
  }

  /** Every config name and schema file under the tree, as listed now (for a one-shot check). */
  async list(): Promise<{ names: string[]; schemas: string[] }> {
    const batch = await this.resolve({ seq: 0, paths: new Set(), rescan: new Set(this.roots), reasons: new Set(['request']), firstHintAt: 0 }, true);
    return { names: [...batch.names].sort(), schemas: [...batch.schemas] };
  }

  /** Lists `dir` and returns the paths whose identity differs from what was last read (all of them if `force`),
   *  plus the known paths under `dir` that are gone. */
  async #sweep(dir: string, force: boolean, listing: Listing): Promise<string[]> {
    const listed = new Set<string>();
    const onTooDeep = this.#options.onTooDeep;
    for await (const file of walkConfigFiles(dir, { onDir: (d) => listing.dirs.add(d), maxDepth: MAX_WALK_DEPTH, ...(onTooDeep ? { onTooDeep } : {}) })) {
      if (this.isSchemaFile(file) || this.nameOf(file) !== undefined) listed.add(file);
      listing.files.add(file);
    }
    const differing = await mapLimit([...listed], 32, async (file) => {
      if (force) return file;
      return (await identityKey(file)) === this.#known.get(file) ? undefined : file;
    });
    const out = differing.filter((f): f is string => f !== undefined);
    for (const file of this.#known.keys()) if (isInside(file, dir, true) && !listed.has(file)) out.push(file);
    return out;
  }

  async #remember(file: string): Promise<void> {
    const key = await identityKey(file);
    if (key === undefined) this.#known.delete(file);
    else this.#known.set(file, key);
  }
}

/** A watched directory of configs: the {@link Source} that `configDir` selects. */
export class FilesSource implements Source<FilesSourceStatus> {
  readonly initial: SourceBatch;
  readonly #tree: FileTree;
  readonly #watcher: DirWatcher;
  readonly #racy = new Set<string>();
  #racyTimer: NodeJS.Timeout | undefined;
  /** Files to look at again after a delay (a read that failed for a passing reason), one timer each. */
  readonly #later = new Map<string, NodeJS.Timeout>();

  private constructor(tree: FileTree, watcher: DirWatcher, initial: SourceBatch) {
    this.#tree = tree;
    this.#watcher = watcher;
    this.initial = initial;
  }

  /** Watches the directories, then lists everything once (the initial batch). Watching comes first, so that
   *  nothing written during the initial load is missed. */
  static async open(options: FilesSourceOptions): Promise<FilesSource> {
    const log = options.logger.child({ module: 'watch' });
    // Reported once per directory (and at most 1,000 of them): a config past the depth limit is never silent.
    const tooDeep = new Set<string>();
    const onTooDeep = (dir: string) => {
      if (tooDeep.has(dir) || tooDeep.size >= 1_000) return;
      tooDeep.add(dir);
      log.warn({ dir: displayPath(dir), maxDepth: MAX_WALK_DEPTH }, `directory deeper than ${MAX_WALK_DEPTH} levels below the config dir: its configs are not loaded`);
    };
    const tree = new FileTree(options.configDir, options.schemaDir, { followExternalLinks: options.followExternalLinks, onTooDeep });
    await assertDirectories(tree.configDir, tree.schemaDir);
    const watcher = await DirWatcher.open({
      roots: tree.roots,
      debounceMs: options.debounceMs,
      maxBatchDelayMs: options.maxBatchDelayMs,
      verifyIntervalMs: options.verifyIntervalMs,
      usePolling: options.usePolling,
      logger: log,
    });
    try {
      const initial = await tree.resolve({ seq: 0, paths: new Set(), rescan: new Set(tree.roots), reasons: new Set(['request']), firstHintAt: performance.now() }, true);
      return new FilesSource(tree, watcher, initial);
    } catch (err) {
      await watcher.close();
      throw err;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SourceBatch> {
    for await (const batch of this.#watcher) yield await this.#tree.resolve(batch, batch.reasons.has('request'));
  }

  read(name: string, limits: ReadLimits): Promise<EntryRead> {
    return this.#tree.read(name, limits, (file, delayMs) => (delayMs === undefined ? this.#lookAgainLater(file) : this.#retryLater(file, delayMs)));
  }

  schemaRead(file: string, identity: FileIdentity | undefined, error?: ConfigError): void {
    this.#tree.schemaRead(file, identity, error, (f, delayMs) => this.#retryLater(f, delayMs ?? TRANSIENT_FIRST_MS));
  }

  async settled(): Promise<void> {
    // Events are hints: whatever changed since it was read is looked at again, event or no event.
    const again = await this.#tree.moved();
    if (again.length > 0) this.#watcher.hint(again);
  }

  resync(): Promise<void> {
    return this.#watcher.rescan();
  }

  ping(): Promise<void> {
    return this.#watcher.ping();
  }

  setTiming(timing: SourceTiming): void {
    this.#watcher.setTiming(timing);
  }

  status(): FilesSourceStatus {
    return { kind: 'files', connected: true, configDir: this.#tree.configDir };
  }

  async close(): Promise<void> {
    await this.#watcher.close();
    clearTimeout(this.#racyTimer);
    for (const timer of this.#later.values()) clearTimeout(timer);
    this.#later.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Hints `file` again after `delayMs` (one pending timer per file): the retry of a transient read failure. */
  #retryLater(file: string, delayMs: number): void {
    if (this.#later.has(file)) return;
    this.#later.set(
      file,
      setTimeout(() => {
        this.#later.delete(file);
        this.#watcher.hint([file]);
      }, delayMs),
    );
  }

  /** A read too close to the file's last change (see RACY_WINDOW_MS), or of a version already replaced, is
   *  committed at once and re-checked shortly after: a same-size write in the same clock tick cannot hide. */
  #lookAgainLater(file: string): void {
    this.#racy.add(file);
    this.#racyTimer ??= setTimeout(() => {
      this.#racyTimer = undefined;
      const files = [...this.#racy];
      this.#racy.clear();
      this.#watcher.hint(files);
    }, RACY_WINDOW_MS + 3);
  }
}

export async function assertDirectories(configDir: string | undefined, schemaDir: string | undefined): Promise<void> {
  for (const [what, dir] of [['configDir', configDir], ['schemaDir', schemaDir]] as const) {
    if (dir === undefined) continue;
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new HotconfError('E_OPTIONS', `${what} is not a directory: ${dir}`);
  }
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
