// Reading, the first half of the load stage: the whole file, such that its identity (dev, ino, size, mtime,
// ctime) was the same before and after the read, with every OS failure turned into a ReadError that names the
// file but never quotes Node's message. The identities read here are hotconf's memory of what it has seen.
import { constants, type BigIntStats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { HotconfError, ReadError } from '../errors.js';

// ----------------------------------------------------------------------------------------------- identity

/** What identifies one version of a file on disk (from fs.stat with { bigint: true }, following symlinks). */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

const identityOf = ({ dev, ino, size, mtimeNs, ctimeNs }: BigIntStats): FileIdentity => ({
  dev,
  ino,
  size,
  mtimeNs,
  ctimeNs,
});

export function sameIdentity(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * stat (following symlinks). undefined when the path does not exist (ENOENT/ENOTDIR). Other errors (ELOOP,
 * EACCES…) throw ReadError with code E_READ naming the file and the OS code. A non-regular file still returns
 * its identity; callers check `isFile`.
 */
export async function statIdentity(file: string): Promise<(FileIdentity & { isFile: boolean }) | undefined> {
  let s: BigIntStats;
  try {
    s = await stat(file, { bigint: true });
  } catch (err) {
    if (osCode(err) === 'ENOENT' || osCode(err) === 'ENOTDIR') return undefined;
    throw osError(err, file);
  }
  return { ...identityOf(s), isFile: s.isFile() };
}

// ------------------------------------------------------------------------------------------------ reading

export interface ReadOptions {
  /** Largest file accepted, in bytes. Default 1 MiB (1_048_576). */
  maxFileBytes?: number;
  /** Most reads attempted (the first one included) while the file keeps changing under the read. Default 5. */
  maxAttempts?: number;
  /** Name used in error messages (e.g. 'config/app.yaml'); default: the path as given. */
  displayPath?: string;
  /** Aborts between attempts; the promise then rejects with `signal.reason`. Default: none. */
  signal?: AbortSignal;
}

export interface FileRead {
  readonly bytes: Buffer;
  readonly identity: FileIdentity;
  /** The read began within {@link RACY_WINDOW_MS} of the file's last change: look again after that window. */
  readonly racy: boolean;
  /** The path was renamed over or deleted while being read: the bytes are a whole, earlier version. Look again. */
  readonly superseded: boolean;
}

const READ_CHUNK_BYTES = 64 * 1024;
/**
 * File timestamps come from the kernel's coarse clock (a tick is at most 10 ms on Linux; kernels with
 * multigrain timestamps do better). A write in the same tick as our read can leave the identity unchanged,
 * so a read that began less than this window after the file's last change proves nothing on its own (git's
 * "racy" rule). Such a read is returned at once, marked `racy`: the caller commits it without delay and looks
 * at the file again once the window has passed.
 */
export const RACY_WINDOW_MS = 12;

/** Reads the whole file such that its identity was the same before and after the read. */
export async function readStable(file: string, options: ReadOptions = {}): Promise<FileRead> {
  const { maxFileBytes = 1_048_576, maxAttempts = 5, displayPath = file, signal } = options;
  integerAtLeast('maxFileBytes', maxFileBytes, 1);
  integerAtLeast('maxAttempts', maxAttempts, 1);
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const startedMs = Date.now();
    const read = await readOnce(file, maxFileBytes, displayPath);
    if (read) {
      const changedMs = Number(read.identity.ctimeNs / 1_000_000n);
      return { ...read, racy: startedMs - changedMs <= RACY_WINDOW_MS };
    }
    if (attempt >= maxAttempts) {
      const detail = `kept changing while being read (${maxAttempts} attempts)`;
      throw new ReadError('E_UNSTABLE', { file: displayPath }, detail);
    }
    try {
      await delay(Math.min(2 ** attempt, 10), undefined, signal ? { signal } : undefined);
    } catch (err) {
      throw signal?.aborted ? signal.reason : err;
    }
  }
}

/** One read; undefined when the file was written in place while it was being read. */
async function readOnce(file: string, maxFileBytes: number, displayPath: string): Promise<Omit<FileRead, 'racy'> | undefined> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO that has no writer must not hang; fstat refuses it right after.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw osError(err, displayPath);
  }
  try {
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) {
      throw new ReadError('E_NOT_FILE', { file: displayPath }, `is not a regular file (${kindOf(before)})`);
    }
    if (before.size > BigInt(maxFileBytes)) throw tooLarge(displayPath, maxFileBytes, `${before.size} bytes`);
    const bytes = await readUpTo(fh, maxFileBytes + 1); // one byte more tells a file that grew past the limit
    if (bytes.length > maxFileBytes) throw tooLarge(displayPath, maxFileBytes, `at least ${bytes.length} bytes`);
    // The usual case in one call: the path still names the inode we read, whose identity did not move during
    // the read (same dev, ino, size, mtime, ctime): the bytes are whole and current.
    const first = identityOf(before);
    const now = await stat(file, { bigint: true }).then(identityOf, () => undefined);
    if (sameIdentity(first, now) && BigInt(bytes.length) === first.size) return { bytes, identity: first, superseded: false };
    const after = identityOf(await fh.stat({ bigint: true }));
    // Written in place during the read: the bytes may be torn. Read again.
    if (!sameIdentity(identityOf(before), after) || BigInt(bytes.length) !== after.size) return undefined;
    // Replaced (renamed over, or deleted) during the read: what we hold is a whole earlier version, read
    // from its own inode. Keep it, and say that the path has moved on.
    return { bytes, identity: after, superseded: !sameIdentity(after, now) };
  } catch (err) {
    throw err instanceof HotconfError ? err : osError(err, displayPath);
  } finally {
    // Not awaited: nothing returned depends on it, and it is one thread-pool trip less on every change's
    // critical path (the descriptor is released a moment later either way).
    fh.close().catch(() => undefined);
  }
}

async function readUpTo(fh: FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < limit) {
    const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, limit - total));
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, total);
    chunks.push(chunk.subarray(0, bytesRead));
    total += bytesRead;
    // A regular file reads short only at its end: no second call to learn that. Growth after this read
    // shows in the fstat that follows it.
    if (bytesRead < chunk.length) break;
  }
  return Buffer.concat(chunks, total);
}

const tooLarge = (file: string, max: number, size: string) =>
  new ReadError('E_TOO_LARGE', { file }, `is too large: ${size}, over the limit of ${max} bytes`);

const kindOf = (s: BigIntStats) =>
  s.isDirectory() ? 'a directory' : s.isFIFO() ? 'a FIFO' : s.isSocket() ? 'a socket' : 'a device';

const osCode = (err: unknown): string | undefined =>
  err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;

/** An OS error as a ReadError: the OS code and libuv's description, never Node's message with the real path. */
function osError(err: unknown, file: string): ReadError {
  const code = osCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ReadError('E_NOT_FOUND', { file }, 'not found', { cause: err });
  }
  if (code === 'EISDIR' || code === 'ENXIO') {
    return new ReadError('E_NOT_FILE', { file }, `is not a regular file (${code})`, { cause: err });
  }
  const description = err instanceof Error ? /^[A-Z0-9]+: ([^,]+)/.exec(err.message)?.[1] : undefined;
  const what = code === undefined ? 'unknown error' : description ? `${code} (${description})` : code;
  return new ReadError('E_READ', { file }, `cannot read: ${what}`, { cause: err });
}

/**
 * OS errors that say nothing about the file, only about the moment: out of file descriptors (EMFILE, ENFILE),
 * of memory (ENOMEM), a busy or failing device (EAGAIN, EIO, EINTR). A read that failed so is tried again later;
 * it is never remembered as what the file is.
 */
export const TRANSIENT_OS_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EIO', 'ENOMEM', 'EINTR']);

/** True for a read that failed for a passing reason ({@link TRANSIENT_OS_CODES}). */
export function isTransient(err: unknown): boolean {
  const cause = err instanceof HotconfError ? err.cause : err;
  const code = osCode(cause);
  return code !== undefined && TRANSIENT_OS_CODES.has(code);
}

/** Refuses an option that is not an integer of at least `min` (E_OPTIONS). Parsing checks its limits with it too. */
export function integerAtLeast(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new HotconfError('E_OPTIONS', `${name} must be an integer >= ${min}, got ${value}`);
  }
}
