// The first stage of the pipeline: file-system events become an AsyncIterable<ChangeBatch>.
// Events are hints, not truth (DESIGN.md point 4): the raw directory events (one fs.watch per directory, or
// chokidar's stat polling with usePolling), watcher errors and a periodic verify tick all only say "look here"; the consumer stats and reads
// to find out what really changed. Batches are debounced, coalesced per path and pulled by the consumer.
import type { FSWatcher } from 'chokidar';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { CONFIG_EXTENSIONS, isHidden } from '../../names.js';
import { OPTION_DEFAULTS } from '../../options.js';
import { DirWatches } from './inotify.js';
import { BatchQueue, type BatchReason, type QueuedBatch } from '../queue.js';

export type { BatchReason } from '../queue.js';

/** One unit of work for the consumer: every path hinted since the previous batch, coalesced. */
export interface ChangeBatch {
  /** Increases by one per batch. */
  readonly seq: number;
  /** Absolute paths of config files that may have changed (added, modified, removed). */
  readonly paths: ReadonlySet<string>;
  /** Absolute directories whose whole subtree must be listed again (directory events, ConfigMap
   *  `..data` swaps, watcher errors, verify ticks, explicit requests). */
  readonly rescan: ReadonlySet<string>;
  /** Why this batch exists. */
  readonly reasons: ReadonlySet<BatchReason>;
  /** `performance.now()` of the earliest hint coalesced into this batch (event → commit latency). */
  readonly firstHintAt: number;
}

export interface WatchOptions {
  /** Directories to watch, recursively. Required. */
  roots: readonly string[];
  /** File extensions that are config files. Default `['.yaml', '.yml', '.json']`. */
  extensions?: readonly string[];
  /** Quiet time after the last event before a batch is released, in ms. Restarts on each event. Default 25. */
  debounceMs?: number;
  /** Ceiling on how long a batch may be held back by a storm of events, in ms. Default 1000. */
  maxBatchDelayMs?: number;
  /** Period of the verify tick that asks the consumer to re-stat everything (catches dropped events), in ms.
   *  Stretched automatically so that sweeping never takes more than ~5% of the time. 0 disables. Default 1000. */
  verifyIntervalMs?: number;
  /** Use stat polling instead of inotify (network file systems, exhausted watch limits). Default false. */
  usePolling?: boolean;
  /** Polling interval when `usePolling` is set, in ms. Default 250. */
  pollIntervalMs?: number;
  /** Logger for watcher problems. Default: none. */
  logger?: Logger;
  /** Aborting closes the watcher and ends iteration. */
  signal?: AbortSignal;
}

const DEFAULT_EXTENSIONS = Object.keys(CONFIG_EXTENSIONS);

/** How long a batch holding a config file that was just deleted waits for it to be recreated, in ms. */
const REMOVAL_GRACE_MS = 50;

/** How often each watched root's own identity is checked (one stat per root), in ms. */
const ROOT_CHECK_MS = 250;

/** Most distinct paths held for the next batch; past it the batch becomes a rescan of every root. */
const MAX_PENDING_PATHS = 100_000;

/** A hinted path: a file to look at, or a directory whose subtree is listed again. */
type Hint = 'file' | 'dir';

/**
 * Watches directories and yields {@link ChangeBatch}es. Single consumer: iterate it once with `for await`.
 * Breaking out of the loop, aborting the signal or `close()` releases the watcher and every timer.
 */
export class DirWatcher implements AsyncIterable<ChangeBatch>, AsyncDisposable {
  readonly roots: readonly string[];
  private readonly extensions: ReadonlySet<string>;
  private verifyIntervalMs: number;
  private readonly logger: Logger | undefined;
  /** With `usePolling` (or after inotify's limits ran out): chokidar's stat polling. Replaced by a fresh
   *  instance when a root changes identity (see {@link reopen}). */
  private chokidar: FSWatcher | undefined;
  /** Resolves when the current chokidar instance has scanned its roots. */
  private chokidarReady: Promise<void> = Promise.resolve();
  /** Settles once a fall-back to polling has its chokidar instance (chokidar is loaded on that first need). */
  private switching: Promise<void> = Promise.resolve();
  /** Otherwise: one fs.watch (inotify) per directory. */
  private dirs: DirWatches | undefined;
  private polling: boolean;
  private readonly pollIntervalMs: number;
  private readonly queue: BatchQueue<Hint>;
  private verifyTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Identity (`dev:ino:birthtime`, `missing`) of each root when last checked. */
  private readonly rootIds = new Map<string, string>();
  private rootTimer: NodeJS.Timeout | undefined;
  private readonly abortListener = () => void this.close().catch(() => undefined);
  private readonly signal: AbortSignal | undefined;

  private constructor(options: WatchOptions) {
    if (options.roots.length === 0) throw new TypeError('watch: at least one root is required');
    this.roots = options.roots.map((r) => path.resolve(r));
    this.extensions = new Set(options.extensions ?? DEFAULT_EXTENSIONS);
    this.queue = new BatchQueue<Hint>({
      debounceMs: options.debounceMs ?? OPTION_DEFAULTS.debounceMs,
      maxBatchDelayMs: options.maxBatchDelayMs ?? OPTION_DEFAULTS.maxBatchDelayMs,
      maxKeys: MAX_PENDING_PATHS,
      // A directory to list again covers a file hinted at the same path.
      merge: (a, b) => (a === 'dir' ? a : b),
      onFinished: (batch, ms) => {
        // Keep the sweep under ~5% of wall time however large the tree: interval >= 20 × sweep cost.
        if (batch.reasons.has('verify')) this.scheduleVerify(Math.max(this.verifyIntervalMs, ms * 20));
      },
    });
    this.verifyIntervalMs = Math.max(0, options.verifyIntervalMs ?? OPTION_DEFAULTS.verifyIntervalMs);
    this.logger = options.logger;
    this.signal = options.signal;
    this.polling = options.usePolling ?? false;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    if (!this.polling) this.dirs = new DirWatches(
      (dir, event, name) => this.onRaw(event, name ?? '', { watchedPath: dir }),
      (err, dir) => this.onError(err, dir),
      this.logger,
    );
  }

  /** Only once chokidar is loaded ({@link loadChokidar}). */
  private openChokidar(): FSWatcher {
    const w = chokidar!.watch([...this.roots], {
      ignoreInitial: true,
      persistent: true,
      followSymlinks: true,
      // hotconf reconciles delete+recreate itself from what is on disk; chokidar's 100 ms unlink delay only adds latency.
      atomic: false,
      usePolling: this.polling,
      interval: this.pollIntervalMs,
      binaryInterval: this.pollIntervalMs,
      ignored: (p: string, stats?: { isFile(): boolean }) => this.ignored(p, stats),
    });
    w.on('all', (event: string, p: string) => this.onEvent(event, p));
    w.on('raw', (event: string, p: string, details: unknown) => this.onRaw(event, p, details));
    w.on('error', (err: unknown) => {
      if (w === this.chokidar) this.onError(err, undefined); // not the replaced watcher's last words
    });
    this.chokidarReady = new Promise<void>((resolve) => w.once('ready', () => resolve()));
    return w;
  }

  /** Starts watching; resolves once the initial directory scan of the watcher is done. */
  static async open(options: WatchOptions): Promise<DirWatcher> {
    const w = new DirWatcher(options);
    await w.start();
    return w;
  }

  private async start(): Promise<void> {
    if (this.signal?.aborted) {
      await this.close();
      return;
    }
    this.signal?.addEventListener('abort', this.abortListener, { once: true });
    if (this.polling) {
      await loadChokidar();
      if (!this.closed) this.chokidar = this.openChokidar();
    }
    const dirs = this.dirs;
    if (dirs) await Promise.all(this.roots.map((root) => dirs.addTree(root, this.roots)));
    await this.switching;
    // The chokidar instance in use may be replaced while it scans (inotify limits reached, a root replaced):
    // wait for the one in use to be ready.
    for (let w = this.chokidar; w && !this.closed; w = this.chokidar) {
      await this.chokidarReady;
      if (w === this.chokidar) break;
    }
    this.checkRoots();
    this.rootTimer = setInterval(() => this.checkRoots(), ROOT_CHECK_MS).unref();
    this.scheduleVerify(this.verifyIntervalMs);
  }

  private onError(err: unknown, dir: string | undefined): void {
    if (this.closed) return;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (!this.polling && (code === 'ENOSPC' || code === 'EMFILE')) {
      this.fallBackToPolling(code, err);
      return;
    }
    this.logger?.warn({ err, dir }, 'watcher error; rescanning');
    void this.request(this.roots, 'error'); // never rejects; nobody waits for an error rescan
  }

  /**
   * inotify's per-user limits ran out (ENOSPC: fs.inotify.max_user_watches; EMFILE: max_user_instances or
   * file descriptors): some directories would go unwatched, in silence. So the inotify watches are replaced,
   * once, by chokidar's stat polling, said loudly, and everything is rescanned: slower to notice, never blind.
   */
  private fallBackToPolling(code: string, err: unknown): void {
    this.logger?.warn(
      { err, code, polling: true, pollIntervalMs: this.pollIntervalMs },
      code === 'ENOSPC'
        ? 'inotify watch limit reached (raise fs.inotify.max_user_watches); falling back to polling'
        : 'inotify instance or file descriptor limit reached (raise fs.inotify.max_user_instances or ulimit -n); falling back to polling',
    );
    this.polling = true;
    this.dirs?.close();
    this.dirs = undefined;
    this.switching = loadChokidar().then(() => {
      if (this.closed) return;
      this.reopen();
      void this.request(this.roots, 'error'); // never rejects
    }, (err: unknown) => this.logger?.error({ err }, 'loading chokidar for polling failed'));
  }

  /**
   * A fresh chokidar instance rather than unwatch()+add() of the root: chokidar 5.0.0 keeps a root that was once
   * a symlink in its `_symlinkPaths` after unwatch(), and then never watches the real directory that takes its
   * place again (measured: symlink → real dir → renamed away → recreated, and changes go unseen). Rare, so cheap.
   * The rescan on `ready` covers what changed while the new instance was scanning.
   */
  private reopen(): void {
    const old = this.chokidar;
    const w = this.openChokidar();
    this.chokidar = w;
    w.once('ready', () => void this.request(this.roots, 'event')); // never rejects
    if (old) closeChokidar(old).catch((err: unknown) => this.logger?.error({ err }, 'closing the replaced watcher failed'));
  }

  /** True if `file` (absolute) has a config extension and no hidden segment below its root. */
  isConfigFile(file: string): boolean {
    if (!this.extensions.has(path.extname(file))) return false;
    const root = this.rootOf(file);
    if (root === undefined) return false;
    return !path.relative(root, file).split(path.sep).some(isHidden);
  }

  private rootOf(p: string): string | undefined {
    let best: string | undefined;
    for (const root of this.roots) {
      if ((p === root || p.startsWith(root + path.sep)) && (best === undefined || root.length > best.length)) best = root;
    }
    return best;
  }

  private ignored(p: string, stats?: { isFile(): boolean }): boolean {
    const abs = path.resolve(p);
    const root = this.rootOf(abs);
    if (root === undefined || abs === root) return false;
    if (path.relative(root, abs).split(path.sep).some(isHidden)) return true;
    // Files that are not configs need no watch of their own; directories do.
    return stats?.isFile() === true && !this.extensions.has(path.extname(abs));
  }

  private onEvent(event: string, p: string): void {
    const abs = path.resolve(p);
    if (event === 'addDir' || event === 'unlinkDir') {
      if (this.roots.includes(abs)) {
        // chokidar has let go of this root: whatever is there at the next check is watched anew.
        if (event === 'unlinkDir') this.rootIds.set(abs, 'missing');
        this.checkRoots();
      }
      this.hintDir(abs);
    } else if (this.isConfigFile(abs)) {
      this.hintEvent(abs);
    }
  }

  /** Raw fs.watch events (ours, or chokidar's `raw` ones from the fs.watch under it, before its own filtering
   *  and throttling): measured here, they arrive for every atomic save where chokidar's `change` arrives once. */
  private onRaw(event: string, evPath: string, details: unknown): void {
    const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
    if (typeof watched !== 'string' || typeof evPath !== 'string') return;
    const base = path.resolve(watched);
    if (evPath === '') {
      // fs.watch may not know the name: the whole directory is the hint.
      if (this.dirs && this.rootOf(base) !== undefined) this.hintDir(base);
      return;
    }
    // A directory watcher names the child; a file watcher names the file itself.
    const candidate = path.basename(base) === evPath && this.isConfigFile(base) ? base : path.join(base, evPath);
    const name = path.basename(candidate);
    if (this.isConfigFile(candidate)) {
      this.hintEvent(candidate);
      // A config that went away (deleted, renamed away) is often back at once, and delete-then-recreate is a
      // change, not a removal (DESIGN.md point 5): once a stat says it is gone, its batch waits at least
      // REMOVAL_GRACE_MS (never past maxBatchDelayMs) for it to come back. Removals are rare; saves never wait.
      if (this.dirs && event === 'rename') {
        stat(candidate).then(
          () => undefined,
          () => this.queue.hold(REMOVAL_GRACE_MS),
        );
      }
    } else if (name.startsWith('..')) {
      // Kubernetes ConfigMap volumes swap a `..data` symlink: every file of the directory may have changed.
      this.hintDir(path.dirname(candidate));
    } else if (!isHidden(name) && !this.extensions.has(path.extname(name)) && this.rootOf(candidate) !== undefined) {
      // Could be a directory renamed in or out; listing a path that is not a directory costs one failed opendir.
      // A directory that came is watched before it is listed, so that nothing written into it falls in between.
      if (this.dirs) {
        const dirs = this.dirs;
        dirs.sync(candidate, this.roots).then(
          () => this.hintDir(candidate),
          (err: unknown) => this.logger?.error({ err }, 'watching a directory failed'),
        );
      } else {
        this.hintDir(candidate);
      }
    }
  }

  private hintDir(dir: string): void {
    this.queue.add([[dir, 'dir']], 'event');
  }

  /** A watcher event about a file: a writer is active, so the debounce window restarts. */
  private hintEvent(file: string): void {
    this.queue.add([[file, 'file']], 'event');
  }

  /**
   * Adds paths to the next batch (the consumer calls this to re-check a path it suspects). A re-check is not
   * writer activity: it rides along with a pending batch without restarting its debounce window (the re-check
   * of a racy read comes ~15 ms after that read, and could otherwise push back the window of the next save).
   */
  hint(paths: Iterable<string>): void {
    const hints = Array.from(paths, (file): [string, Hint] => [path.resolve(file), 'file']);
    this.queue.add(hints, 'event', { restarts: false });
  }

  /**
   * Asks for a rescan of `dirs` (default: every root) in the next batch, released without debounce.
   * Resolves when the consumer is done with the batch that carried the request (it pulled the next one,
   * or stopped), or at once if the watcher is closed.
   */
  rescan(dirs: Iterable<string> = this.roots): Promise<void> {
    return this.request(dirs, 'request');
  }

  /**
   * Resolves when a batch has gone through the consumer: proof that the pipeline still moves (a watchdog's
   * probe). It rides along with pending events and never cuts their debounce short.
   */
  ping(): Promise<void> {
    return this.queue.ping();
  }

  /** Changes the timing while running; the next batch and the next verify tick use the new values. */
  setTiming(timing: { debounceMs?: number | undefined; maxBatchDelayMs?: number | undefined; verifyIntervalMs?: number | undefined }): void {
    this.queue.setTiming(timing);
    if (timing.verifyIntervalMs !== undefined && timing.verifyIntervalMs !== this.verifyIntervalMs) {
      this.verifyIntervalMs = Math.max(0, timing.verifyIntervalMs);
      if (!this.queue.inFlight?.reasons.has('verify')) this.scheduleVerify(this.verifyIntervalMs);
    }
  }

  private request(dirs: Iterable<string>, reason: BatchReason): Promise<void> {
    return this.queue.request(Array.from(dirs, (d): [string, Hint] => [path.resolve(d), 'dir']), reason, { restarts: false });
  }

  private scheduleVerify(ms: number): void {
    clearTimeout(this.verifyTimer);
    this.verifyTimer = undefined;
    if (this.verifyIntervalMs === 0 || this.closed) return;
    this.verifyTimer = setTimeout(() => {
      this.verifyTimer = undefined;
      // The next tick is scheduled when the consumer has finished this one (finishInFlight). A tick never
      // cuts a debounce short: a file being written in chunks is read once its writer goes quiet.
      this.queue.add(
        this.roots.map((r): [string, Hint] => [r, 'dir']),
        'verify',
        { urgent: this.queue.idle, restarts: false },
      );
    }, ms);
    this.verifyTimer.unref();
  }

  /**
   * chokidar stops watching a root that is deleted, renamed away or replaced (by a new directory or a symlink
   * to another one), and its events about that are not reliable under load. So each root's identity is
   * checked every {@link ROOT_CHECK_MS}, verify ticks or not: when it changes, the root is watched anew and
   * rescanned (a vanished root is rescanned too, which reports its configs as removed).
   */
  private checkRoots(): void {
    for (const root of this.roots) {
      stat(root, { bigint: true }).then(
        // Inode numbers are reused at once (rm -rf then mkdir gets the same one): the birth time tells them apart.
        (st) => (st.isDirectory() ? `${st.dev}:${st.ino}:${st.birthtimeNs}` : 'not-a-directory'),
        () => 'missing',
      ).then((id) => {
        const was = this.rootIds.get(root);
        if (this.closed || was === id) return;
        this.rootIds.set(root, id);
        if (was === undefined) return; // first look
        if (id === 'missing' || id === 'not-a-directory') {
          this.logger?.warn({ root }, 'watched directory is gone; waiting for it to come back');
        } else {
          this.logger?.info({ root }, 'watched directory is new; watching it again');
          if (this.chokidar) {
            this.reopen();
          } else {
            this.dirs?.removeTree(root);
            void this.dirs?.addTree(root, this.roots).catch((err: unknown) => this.logger?.error({ err }, 'watching a directory failed'));
          }
        }
        void this.request([root], 'event'); // never rejects
      }, (err: unknown) => this.logger?.error({ err }, 'root check failed'));
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChangeBatch> {
    try {
      for await (const batch of this.queue) yield this.toChangeBatch(batch);
    } finally {
      await this.close();
    }
  }

  private toChangeBatch(batch: QueuedBatch<Hint>): ChangeBatch {
    const paths = new Set<string>();
    const rescan = new Set<string>(batch.overflowed ? this.roots : []);
    for (const [p, hint] of batch.items) (hint === 'dir' ? rescan : paths).add(p);
    return { seq: batch.seq, paths, rescan, reasons: batch.reasons, firstHintAt: batch.firstHintAt };
  }

  /** Stops watching, ends iteration and clears every timer. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.signal?.removeEventListener('abort', this.abortListener);
    clearTimeout(this.verifyTimer);
    clearInterval(this.rootTimer);
    this.queue.close();
    this.dirs?.close();
    if (this.chokidar) await closeChokidar(this.chokidar);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * chokidar's close() removes every listener, 'error' included, but adds still in flight may yet fail (the stat of
 * a symlink loop: ELOOP) and emit 'error': with no listener that throws, an unhandled rejection that ends the
 * process. Late errors are of no interest to a closed watcher.
 */
async function closeChokidar(w: FSWatcher): Promise<void> {
  const closed = w.close();
  w.on('error', () => undefined);
  await closed;
}

/** chokidar is only for polling (`usePolling`, or inotify's limits ran out): loaded then, not by every import
 *  of this module (`hotconf check` and a daemon on inotify never need it). */
let chokidar: typeof import('chokidar') | undefined;
async function loadChokidar(): Promise<void> {
  chokidar ??= await import('chokidar');
}

/** Starts watching `options.roots`; see {@link DirWatcher}. */
export function watchDirs(options: WatchOptions): Promise<DirWatcher> {
  return DirWatcher.open(options);
}
