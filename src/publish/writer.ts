// The publish directory: each version written into a fresh hidden directory, every file by temp + fsync + rename,
// then swapped in with one rename of the `..data` symlink (the Kubernetes ConfigMap layout) and the visible
// links `<name> -> ..data/<name>`, so a reader sees one whole version or the previous one, never a mix. At start,
// what a crash mid-publish left behind is cleared.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { mapLimit } from '../async.js';
import type { ConfigEntry, Logger, Snapshot } from '../store/index.js';
import { redact } from '../validate/index.js';
import { describe, fail } from './errors.js';

export interface PublishOptions {
  /** Directory to publish into, created if missing. Required; never `/` nor an existing non-directory. */
  dir: string;
  /** `json` (default): every config as `<name>.json`, the validated value. `original`: YAML sources as
   *  `<name>.yaml` (the validated value, re-serialized), JSON sources as `<name>.json`. `source`: every config under
   *  its source's own file name with the exact bytes that were validated (comments and all); needs the snapshot to
   *  keep the source text (the library option `keepSource`, which the daemon sets). */
  format?: 'json' | 'original' | 'source';
  /** Replace secret values (`entry.secrets`) with `[REDACTED]` in published files. Default false (the app usually needs them). */
  redactSecrets?: boolean;
  /** Published versions kept besides the current one, for readers still holding an old path. Default 1. */
  keepVersions?: number;
  /** Mode of published files, as an octal string (`'0640'`) or a number (`0o640`); directories get it with `x` added
   *  where `r` is. Set whatever the umask: the files keep secrets. Owner read and write are required, execute bits
   *  refused. Default `'0600'` (owner only), or `'0640'` with `group`. */
  mode?: string | number;
  /** Group that owns published files and directories (a name from /etc/group or a numeric gid), so that an
   *  application running as another user in that group reads them (with `mode` `'0640'`, the default then). hotconf
   *  must be a member of it (or root). Default: none (hotconf's own group, and owner-only files). */
  group?: string | number;
}

/** PublishOptions checked, with their defaults; `gid` is resolved by startPublisher (resolveGroup). */
export interface ResolvedPublish extends Required<Omit<PublishOptions, 'mode' | 'group'>> {
  mode: number;
  dirMode: number;
  group: string | number | undefined;
  gid: number | undefined;
}

const DATA = '..data';
const DATA_TMP = '..data_tmp';
const VERSION_PREFIX = '..v';
const LINK_TMP_PREFIX = '..link_tmp-';
const WRITE_CONCURRENCY = 8;

export function checkPublish(o: PublishOptions): ResolvedPublish {
  if (typeof o.dir !== 'string' || o.dir === '') fail('publish.dir (a directory path) is required');
  const dir = path.resolve(o.dir);
  if (dir === path.parse(dir).root) fail(`publish.dir ${dir}: refusing to publish into the root directory`);
  const format = o.format ?? 'json';
  if (format !== 'json' && format !== 'original' && format !== 'source') fail("publish.format must be 'json', 'original' or 'source'");
  if (format === 'source' && o.redactSecrets === true) fail('publish.format source publishes the exact bytes: it cannot redact secrets (use json or original with redactSecrets)');
  const keepVersions = o.keepVersions ?? 1;
  if (!Number.isInteger(keepVersions) || keepVersions < 0) fail('publish.keepVersions must be an integer >= 0');
  const group = o.group;
  if (group !== undefined && !(typeof group === 'string' ? /^[A-Za-z_][\w.-]{0,31}\$?$|^\d{1,10}$/.test(group) : Number.isInteger(group) && group >= 0)) {
    fail('publish.group must be a group name or a numeric gid');
  }
  const mode = parseMode(o.mode ?? (group === undefined ? DEFAULT_MODE : DEFAULT_GROUP_MODE));
  return { dir, format, keepVersions, redactSecrets: o.redactSecrets ?? false, mode, dirMode: dirModeOf(mode), group, gid: undefined };
}

/** Owner only: published files hold the configs' secrets unless `redactSecrets`. */
const DEFAULT_MODE = 0o600;
/** With `group`: the application's group reads, nobody else. */
const DEFAULT_GROUP_MODE = 0o640;

function parseMode(mode: string | number): number {
  const m = typeof mode === 'number' ? mode : /^0?[0-7]{3}$/.test(mode) ? parseInt(mode, 8) : NaN;
  if (!Number.isInteger(m) || m < 0 || m > 0o777) fail(`publish.mode must be an octal file mode such as '0600' or '0640' (got ${JSON.stringify(mode)})`);
  if ((m & 0o600) !== 0o600) fail(`publish.mode ${octal(m)}: the owner (hotconf) must be able to read and write its files`);
  if ((m & 0o111) !== 0) fail(`publish.mode ${octal(m)}: published files are data, not programs (no execute bits)`);
  return m;
}

/** A directory is entered where its files are read: `x` wherever `r` is. */
function dirModeOf(mode: number): number {
  return mode | ((mode & 0o444) >> 2);
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** The gid of `publish.group`: a number as it is, a name looked up in /etc/group (Node has no getgrnam). */
export async function resolveGroup(o: ResolvedPublish): Promise<ResolvedPublish> {
  if (o.group === undefined) return o;
  if (typeof o.group === 'number' || /^\d+$/.test(o.group)) return { ...o, gid: Number(o.group) };
  const text = await readFile('/etc/group', 'utf8').catch((err: unknown) => fail(`publish.group ${o.group}: cannot read /etc/group: ${describe(err)}`));
  const line = text.split('\n').find((l) => l.split(':')[0] === o.group);
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) fail(`publish.group: no group named ${JSON.stringify(o.group)} in /etc/group (give a numeric gid instead)`);
  return { ...o, gid };
}

/** Mode (whatever the umask) and group of a file or directory we made. chown only when the group differs: a file
 *  usually gets it already (hotconf runs with that group, or the directory is setgid, as a Kubernetes fsGroup
 *  volume is), and the systemd unit's SystemCallFilter=~@privileged refuses chown(2) outright (EPERM). */
async function own(file: string, mode: number, o: ResolvedPublish): Promise<void> {
  if (o.gid !== undefined && (await stat(file)).gid !== o.gid) await chown(file, -1, o.gid);
  await chmod(file, mode);
}

/** One version, all or nothing: files into a fresh dir, then one rename of `..data`, then the visible links.
 *  `versions` (published version dirs, oldest first; the last one is what `..data` points to) gains the new one
 *  and loses those past `keepVersions`, which are removed. A failed write stops every other write of the version
 *  (nothing is still writing when its directory is removed) and leaves `..data` where it was. */
export async function writeVersion(snap: Snapshot, o: ResolvedPublish, versions: string[], log: Logger): Promise<void> {
  const files = [...snap.configs.values()].map((entry) => render(entry, o));
  await mkdir(o.dir, { recursive: true, mode: o.dirMode });
  const name = `${VERSION_PREFIX}${snap.version}-${randomBytes(4).toString('hex')}`;
  const vdir = path.join(o.dir, name);
  // Owner-only from the first moment; opened up to dirMode (and the group) by own() below.
  await mkdir(vdir, { mode: 0o700 });
  try {
    const dirs = new Set([vdir, ...files.map((f) => path.dirname(path.join(vdir, f.rel)))]);
    await mapLimit(dirs, WRITE_CONCURRENCY, (d) => mkdir(d, { recursive: true, mode: 0o700 }));
    await mapLimit(dirs, WRITE_CONCURRENCY, (d) => own(d, o.dirMode, o));
    await mapLimit(files, WRITE_CONCURRENCY, (f) => writeDurable(path.join(vdir, f.rel), f.text, o));
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
export async function prepareDir(o: ResolvedPublish, log: Logger): Promise<string[]> {
  const dir = o.dir;
  const refuse = (err: unknown) => fail(`publish dir ${dir}: ${describe(err)}`, err);
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : refuse(err)));
  if (st && !st.isDirectory()) fail(`publish dir ${dir} is not a directory`);
  // A directory we create gets dirMode and the group; an existing one is the operator's and keeps its own (the
  // version directories inside carry the protection either way).
  if (!st) await mkdir(dir, { recursive: true, mode: 0o700 }).then(() => own(dir, o.dirMode, o)).catch(refuse);
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

function render(entry: ConfigEntry, o: ResolvedPublish): Rendered {
  const segments = entry.name.split('/');
  if (segments.some((s) => s === '' || s === '.' || s.startsWith('..') || s.includes('\\') || s.includes('\0'))) {
    throw new Error(`config name ${JSON.stringify(entry.name)} cannot be published safely`);
  }
  if (o.format === 'source') {
    // The exact bytes that were validated, under the source's own name (`prometheus.yml` stays `.yml`).
    if (entry.source === undefined) throw new Error(`config ${JSON.stringify(entry.name)} has no source text to publish (publish.format source needs the library option keepSource)`);
    const rel = entry.source.file;
    return { rel, top: segments.length > 1 ? segments[0]! : rel, text: entry.source.text };
  }
  const value = o.redactSecrets ? redact(entry.value, entry.secrets) : entry.value;
  const yaml = o.format === 'original' && /^\.ya?ml$/i.test(path.extname(entry.path));
  const ext = yaml ? '.yaml' : '.json';
  const text = yaml ? toYaml(value, { aliasDuplicateObjects: false }) : `${JSON.stringify(value, null, 2)}\n`;
  return { rel: `${entry.name}${ext}`, top: segments.length > 1 ? segments[0]! : `${entry.name}${ext}`, text };
}

/** Write temp + fsync + rename: the file is whole or absent, and on disk before `..data` points at it. */
async function writeDurable(file: string, text: string, o: ResolvedPublish): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    if (o.gid !== undefined && (await fh.stat()).gid !== o.gid) await fh.chown(-1, o.gid);
    await fh.chmod(o.mode);
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
