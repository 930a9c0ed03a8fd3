// inotify for the files source: one fs.watch per directory of the tree, none per file (see DirWatches).
import { watch as fsWatch, type FSWatcher as NodeWatcher } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isHidden } from '../../names.js';

/**
 * inotify through one fs.watch per directory of the tree, none per file. A directory's watch names each entry
 * that is created, deleted, renamed, written or touched in it: every hint hotconf needs (chokidar watched every
 * file as well, stat'ed each one, and re-listed a whole directory with an lstat per entry after events in it;
 * with 10,000 files that was most of the start-up time and of the memory). Not covered: writes in place to the
 * target of a symlinked config file that lives outside the tree; the verify sweep catches those.
 */
export class DirWatches {
  /** Watched directory (absolute, as reached from its root) → its watch and its `dev:ino`. */
  private readonly watched = new Map<string, { readonly watcher: NodeWatcher; readonly id: string }>();
  private readonly ids = new Set<string>();
  private closed = false;

  constructor(
    private readonly onEvent: (dir: string, event: string, name: string | null) => void,
    private readonly onError: (err: unknown, dir: string) => void,
    private readonly logger: Logger | undefined,
  ) {}

  /** Watches `dir` and every directory below it (following symlinks, skipping hidden ones, 32 levels at most). */
  async addTree(dir: string, roots: readonly string[]): Promise<void> {
    const root = roots.filter((r) => dir === r || dir.startsWith(r + path.sep)).sort((a, b) => b.length - a.length)[0];
    if (root === undefined) return;
    const stack = [{ dir, depth: path.relative(root, dir).split(path.sep).filter(Boolean).length }];
    while (stack.length > 0 && !this.closed) {
      const { dir: d, depth } = stack.pop()!;
      if (this.watched.has(d)) continue;
      const st = await stat(d, { bigint: true }).catch(() => undefined);
      const id = st ? `${st.dev}:${st.ino}` : '';
      if (!st?.isDirectory() || this.ids.has(id) || this.closed) continue;
      let watcher: NodeWatcher;
      try {
        watcher = fsWatch(d, { persistent: true }, (event, name) => this.onEvent(d, event, name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // inotify's limits: the owner falls back to polling (and closes this).
        if (code === 'ENOSPC' || code === 'EMFILE') {
          this.onError(err, d);
          return;
        }
        // EACCES, or gone since the stat: the verify sweep still covers it.
        this.logger?.warn({ err, dir: d }, 'cannot watch directory; relying on the verify sweep');
        continue;
      }
      watcher.on('error', (err) => this.onError(err, d));
      this.watched.set(d, { watcher, id });
      this.ids.add(id);
      if (depth >= 32) continue;
      const handle = await opendir(d).catch(() => undefined);
      if (!handle) continue;
      try {
        for await (const entry of handle) {
          if (isHidden(entry.name)) continue;
          if (entry.isDirectory() || entry.isSymbolicLink()) stack.push({ dir: path.join(d, entry.name), depth: depth + 1 });
        }
      } catch (err) {
        this.logger?.warn({ err, dir: d }, 'cannot list directory');
      }
    }
  }

  /** A path that an event named: watch it (and below) if it is a directory now, stop watching it if not. */
  async sync(p: string, roots: readonly string[]): Promise<void> {
    const st = await stat(p, { bigint: true }).catch(() => undefined);
    if (st?.isDirectory()) {
      // A directory replaced by another one keeps its path: watch the new one.
      const known = this.watched.get(p);
      if (known && known.id !== `${st.dev}:${st.ino}`) this.removeTree(p);
      await this.addTree(p, roots);
    } else {
      this.removeTree(p);
    }
  }

  /** Stops watching `dir` and everything below it. */
  removeTree(dir: string): void {
    for (const [d, { watcher, id }] of this.watched) {
      if (d === dir || d.startsWith(dir + path.sep)) {
        watcher.close();
        this.watched.delete(d);
        this.ids.delete(id);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const { watcher } of this.watched.values()) watcher.close();
    this.watched.clear();
    this.ids.clear();
  }
}
