// Lists the config files of a directory tree: the initial load, every rescan and verify sweep of the files
// source, `hotconf check`, and the schema directory. Hidden entries are skipped, symlinks followed (loops guarded).
import { opendir, stat } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG_EXTENSIONS, isHidden } from '../names.js';

export interface WalkOptions {
  /** File extensions that are config files. Default `['.yaml', '.yml', '.json']`. */
  extensions?: readonly string[];
  /** Absolute directories not to descend into (e.g. a schema dir inside the config dir). */
  exclude?: readonly string[];
  /** Deepest directory level listed below the root. Default 32. */
  maxDepth?: number;
  /** Called with each directory (absolute) whose entries are about to be listed in full. */
  onDir?: (dir: string) => void;
  /** Called with each directory (absolute) not listed because it lies deeper than `maxDepth`: its configs are
   *  not loaded, and the caller says so (never a silent skip). */
  onTooDeep?: (dir: string) => void;
}

/** The deepest directory level listed below a config root. */
export const MAX_WALK_DEPTH = 32;

/**
 * Lists the config files under `root` (absolute paths), skipping hidden entries, following symlinks
 * (with a guard against loops). A missing root yields nothing. Unreadable entries are yielded anyway so
 * that the reader reports them (a symlink loop named `app.yaml` is a config error, not silence).
 */
export async function* walkConfigFiles(root: string, options: WalkOptions = {}): AsyncGenerator<string> {
  const extensions = new Set(options.extensions ?? Object.keys(CONFIG_EXTENSIONS));
  const exclude = new Set((options.exclude ?? []).map((d) => path.resolve(d)));
  const maxDepth = options.maxDepth ?? MAX_WALK_DEPTH;
  const seenDirs = new Set<string>();
  const stack: Array<{ dir: string; depth: number }> = [{ dir: path.resolve(root), depth: 0 }];
  while (stack.length > 0) {
    const { dir, depth } = stack.pop()!;
    let st;
    try {
      st = await stat(dir, { bigint: true });
    } catch {
      continue;
    }
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() || seenDirs.has(key) || exclude.has(dir)) continue;
    seenDirs.add(key);
    let handle;
    try {
      handle = await opendir(dir);
    } catch {
      continue;
    }
    options.onDir?.(dir);
    for await (const entry of handle) {
      if (isHidden(entry.name)) continue;
      const full = path.join(dir, entry.name);
      if (extensions.has(path.extname(entry.name))) {
        // Even a directory or a dangling link named like a config is yielded: the reader reports it.
        yield full;
      } else if (entry.isDirectory() || entry.isSymbolicLink()) {
        if (depth < maxDepth) stack.push({ dir: full, depth: depth + 1 });
        else if (options.onTooDeep && (entry.isDirectory() || (await stat(full).then((s) => s.isDirectory(), () => false)))) options.onTooDeep(full);
      }
    }
  }
}
