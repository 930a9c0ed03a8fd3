// The local copy of the applied release (`cacheDir`), so that an instance can start while etcd is down: one file
// per prefix, written atomically (temporary file, fsync, rename, fsync of the directory), owner-only (0600 in a
// 0700 directory: it holds the configs' secrets). Format: one line of JSON (the release, its revision and its
// entries: key, sha-256, size) then the entries' bytes, in order; every sha is checked when it is read back.
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ManifestEntry } from './layout.js';
import { sha256 } from './layout.js';

const CACHE_FORMAT = 1;

export interface CachedRelease {
  readonly prefix: string;
  readonly release: number;
  readonly revision: string;
  readonly savedAt: number;
  readonly entries: ReadonlyMap<string, ManifestEntry>;
  readonly blobs: ReadonlyMap<string, Uint8Array>;
}

interface Header {
  format: number;
  prefix: string;
  release: number;
  revision: string;
  savedAt: number;
  entries: Array<[key: string, sha: string, size: number]>;
}

/** The cache file of `prefix` in `dir`. */
export const cacheFileOf = (dir: string, prefix: string): string => path.join(path.resolve(dir), `etcd-${sha256(prefix).slice(0, 16)}.release`);

export async function writeCache(dir: string, release: Omit<CachedRelease, 'savedAt'>): Promise<string> {
  await mkdir(path.resolve(dir), { recursive: true, mode: 0o700 });
  const file = cacheFileOf(dir, release.prefix);
  const keys = [...release.entries.keys()].sort();
  const header: Header = {
    format: CACHE_FORMAT,
    prefix: release.prefix,
    release: release.release,
    revision: release.revision,
    savedAt: Date.now(),
    entries: keys.map((k) => [k, release.entries.get(k)!.sha, release.entries.get(k)!.size]),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.write(`${JSON.stringify(header)}\n`);
    const bufs = keys.map((k) => release.blobs.get(release.entries.get(k)!.sha)!);
    for (let i = 0; i < bufs.length; i += 512) await fh.writev(bufs.slice(i, i + 512));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  const d = await open(path.dirname(file), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return file;
}

/** The cached release of `prefix`, or undefined when there is none; throws an Error saying what is wrong with a
 *  file that is there but damaged. */
export async function readCache(dir: string, prefix: string): Promise<CachedRelease | undefined> {
  const file = cacheFileOf(dir, prefix);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const nl = bytes.indexOf(10);
  const fail = (why: string): never => {
    throw new Error(`cache file ${file} is damaged: ${why}`);
  };
  if (nl < 0) fail('no header');
  let header: Header;
  try {
    header = JSON.parse(bytes.subarray(0, nl).toString('utf8')) as Header;
  } catch (err) {
    return fail(`header is not JSON (${(err as Error).message})`);
  }
  if (header.format !== CACHE_FORMAT) fail(`format ${String(header.format)}, expected ${CACHE_FORMAT}`);
  if (header.prefix !== prefix) fail(`it holds prefix ${header.prefix}, not ${prefix}`);
  const entries = new Map<string, ManifestEntry>();
  const blobs = new Map<string, Uint8Array>();
  let at = nl + 1;
  for (const [key, sha, size] of header.entries) {
    if (at + size > bytes.length) fail(`truncated at ${key}`);
    const b = bytes.subarray(at, at + size);
    at += size;
    if (sha256(b) !== sha) fail(`${key} does not match its sha-256`);
    entries.set(key, { sha, size });
    blobs.set(sha, new Uint8Array(b)); // its own memory: a later release keeping this blob must not keep the file
  }
  if (at !== bytes.length) fail('trailing bytes');
  return { prefix, release: header.release, revision: header.revision, savedAt: header.savedAt, entries, blobs };
}
