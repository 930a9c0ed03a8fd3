// The publish directory: each version written into a fresh hidden directory, every file by temp + fsync + rename,
// then swapped in with one rename of the `..data` symlink (the Kubernetes ConfigMap layout) and the visible
// links `<name> -> ..data/<name>`, so a reader sees one whole version or the previous one, never a mix. At start,
// what a crash mid-publish left behind is cleared.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { mapLimit } from '../async.js';
import type { ConfigEntry, Logger, Snapshot } from '../store/index.js';
import { redact } from '../validate/index.js';
import { describe, fail } from './errors.js';

export interface PublishOptions {
  /** Directory to publish into, created if missing. Required; never `/` nor an existing non-directory. */
  dir: string;
  /** `json` (default): every config as `<name>.json`. `original`: YAML sources as `<name>.yaml` (the validated
   *  value, re-serialized), JSON sources as `<name>.json`. */
  format?: 'json' | 'original';
  /** Replace secret values (`entry.secrets`) with `[REDACTED]` in published files. Default false (the app usually needs them). */
  redactSecrets?: boolean;
  /** Published versions kept besides the current one, for readers still holding an old path. Default 1. */
  keepVersions?: number;
}

const DATA = '..data';
const DATA_TMP = '..data_tmp';
const VERSION_PREFIX = '..v';
const LINK_TMP_PREFIX = '..link_tmp-';
const WRITE_CONCURRENCY = 8;

export function checkPublish(o: PublishOptions): Required<PublishOptions> {
  if (typeof o.dir !== 'string' || o.dir === '') fail('publish.dir (a directory path) is required');
  const dir = path.resolve(o.dir);
  if (dir === path.parse(dir).root) fail(`publish.dir ${dir}: refusing to publish into the root directory`);
  const format = o.format ?? 'json';
  if (format !== 'json' && format !== 'original') fail("publish.format must be 'json' or 'original'");
  const keepVersions = o.keepVersions ?? 1;
  if (!Number.isInteger(keepVersions) || keepVersions < 0) fail('publish.keepVersions must be an integer >= 0');
  return { dir, format, keepVersions, redactSecrets: o.redactSecrets ?? false };
}

/** One version, all or nothing: files into a fresh dir, then one rename of `..data`, then the visible links.
 *  `versions` (published version dirs, oldest first; the last one is what `..data` points to) gains the new one
 *  and loses those past `keepVersions`, which are removed. A failed write stops every other write of the version
 *  (nothing is still writing when its directory is removed) and leaves `..data` where it was. */
export async function writeVersion(snap: Snapshot, o: Required<PublishOptions>, versions: string[], log: Logger): Promise<void> {
  const files = [...snap.configs.values()].map((entry) => render(entry, o));
  await mkdir(o.dir, { recursive: true });
  const name = `${VERSION_PREFIX}${snap.version}-${randomBytes(4).toString('hex')}`;
  const vdir = path.join(o.dir, name);
  await mkdir(vdir);
  try {
    const dirs = new Set([vdir, ...files.map((f) => path.dirname(path.join(vdir, f.rel)))]);
    await mapLimit(dirs, WRITE_CONCURRENCY, (d) => mkdir(d, { recursive: true }));
    await mapLimit(files, WRITE_CONCURRENCY, (f) => writeDurable(path.join(vdir, f.rel), f.text));
    await mapLimit(dirs, WRITE_CONCURRENCY, fsyncDir);
    await rm(path.join(o.dir, DATA_TMP), { force: true });
    await symlink(name, path.join(o.dir, DATA_TMP));
    await rename(path.join(o.dir, DATA_TMP), path.join(o.dir, DATA));
  } catch (err) {
    await rm(vdir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  versions.push(name);
  await fsyncDir(o.dir);
  await syncLinks(o.dir, new Set(files.map((f) => f.top)));
  for (const old of versions.splice(0, Math.max(0, versions.length - 1 - o.keepVersions))) {
    await rm(path.join(o.dir, old), { recursive: true, force: true }).catch((err: unknown) =>
      log.warn({ err, dir: path.join(o.dir, old) }, 'could not remove an old version'),
    );
  }
}

/** Creates the dir if missing, refuses a non-directory, and clears what a crash mid-publish left behind. Returns
 *  the version dir `..data` points to (kept: readers may be using it). Older versions of an earlier run cannot be
 *  told from partial ones, so they go too. */
export async function prepareDir(dir: string, log: Logger): Promise<string[]> {
  const refuse = (err: unknown) => fail(`publish dir ${dir}: ${describe(err)}`, err);
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : refuse(err)));
  if (st && !st.isDirectory()) fail(`publish dir ${dir} is not a directory`);
  if (!st) await mkdir(dir, { recursive: true }).catch(refuse);
  const current = await readlink(path.join(dir, DATA)).catch(() => undefined);
  for (const entry of await readdir(dir)) {
    const ours = entry === DATA_TMP || entry.startsWith(LINK_TMP_PREFIX) || entry.startsWith(VERSION_PREFIX);
    if (ours && entry !== current) {
      log.info({ path: path.join(dir, entry) }, 'removing what an earlier run left behind');
      await rm(path.join(dir, entry), { recursive: true, force: true });
    }
  }
  return current?.startsWith(VERSION_PREFIX) && !current.includes('/') ? [current] : [];
}

/** The visible entries: `<top> -> ..data/<top>` for each top-level name, created if missing (atomically, by
 *  rename); our links to configs that are gone are removed. Anything not made by us is never touched. */
async function syncLinks(dir: string, wanted: ReadonlySet<string>): Promise<void> {
  for (const top of wanted) {
    const link = path.join(dir, top);
    const target = `${DATA}/${top}`;
    const existing = await readlink(link).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : err));
    if (existing === target) continue;
    if (existing instanceof Error) throw new Error(`${link} exists and is not a hotconf link: not replaced`, { cause: existing });
    const tmp = path.join(dir, `${LINK_TMP_PREFIX}${randomBytes(4).toString('hex')}`);
    await symlink(target, tmp);
    await rename(tmp, link);
  }
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..') || wanted.has(entry)) continue;
    const target = await readlink(path.join(dir, entry)).catch(() => undefined);
    if (target?.startsWith(`${DATA}/`)) await unlink(path.join(dir, entry));
  }
}

interface Rendered {
  /** Path inside the version dir, `/`-separated. */
  rel: string;
  /** The visible top-level entry: `app.json`, or `db` for `db/primary`. */
  top: string;
  text: string;
}

function render(entry: ConfigEntry, o: Required<PublishOptions>): Rendered {
  const segments = entry.name.split('/');
  if (segments.some((s) => s === '' || s === '.' || s.startsWith('..') || s.includes('\\') || s.includes('\0'))) {
    throw new Error(`config name ${JSON.stringify(entry.name)} cannot be published safely`);
  }
  const value = o.redactSecrets ? redact(entry.value, entry.secrets) : entry.value;
  const yaml = o.format === 'original' && /^\.ya?ml$/i.test(path.extname(entry.path));
  const ext = yaml ? '.yaml' : '.json';
  const text = yaml ? toYaml(value, { aliasDuplicateObjects: false }) : `${JSON.stringify(value, null, 2)}\n`;
  return { rel: `${entry.name}${ext}`, top: segments.length > 1 ? segments[0]! : `${entry.name}${ext}`, text };
}

/** Write temp + fsync + rename: the file is whole or absent, and on disk before `..data` points at it. */
async function writeDurable(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
