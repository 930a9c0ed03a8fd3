// Helpers of the fault tests (RELIABILITY.md section 3): what the machine allows (user namespaces, mounts,
// dropping privileges), a daemon's memory, and reading a running sidecar's view of the configs.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);

/** Runs a command; true when it exits 0. Never throws (a missing binary is false). */
export async function succeeds(cmd: string, args: readonly string[]): Promise<boolean> {
  try {
    await run(cmd, [...args], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** `unshare -U -r` works and gives a private /proc/sys/user/max_inotify_watches (Linux >= 5.11). */
export async function canLimitInotify(): Promise<boolean> {
  return succeeds('unshare', ['-U', '-r', 'sh', '-c', 'echo 50 > /proc/sys/user/max_inotify_watches']);
}

/**
 * A prefix for startHotconf that runs the daemon in its own user namespace whose inotify limit `limit`
 * (`max_inotify_watches`, `max_inotify_instances`) is `value`: only that process tree is limited, nothing else on
 * the machine (the global fs.inotify.* sysctls are left alone).
 */
export function inotifyLimited(limit: 'max_inotify_watches' | 'max_inotify_instances', value: number): string[] {
  return ['unshare', '-U', '-r', 'sh', '-c', `echo ${value} > /proc/sys/user/${limit} && exec "$@"`, 'sh'];
}

export const isRoot = process.getuid?.() === 0;

/**
 * The prefix that takes root's file-permission override away (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, from the
 * bounding and inheritable sets, so the command runs without them), or undefined when setpriv is missing. Root
 * then meets mode bits like any user, while it may still reach the project wherever it is checked out (a clone
 * under a 0700 temp dir or /root is out of reach for `nobody`: dropping to another user made the daemon unable to
 * start from `../shared/tools/fresh-clone`'s clone).
 */
export async function withoutDacOverride(): Promise<string[] | undefined> {
  const drop = '-dac_override,-dac_read_search';
  const prefix = ['setpriv', `--inh-caps=${drop}`, `--bounding-set=${drop}`];
  return (await succeeds(prefix[0]!, [...prefix.slice(1), 'true'])) ? prefix : undefined;
}

/** CAP_DAC_OVERRIDE (bit 1) and CAP_DAC_READ_SEARCH (bit 2) in a `CapEff:` hex mask. */
export function hasDacOverride(capEff: string): boolean {
  return (BigInt(`0x${capEff.trim()}`) & 0b110n) !== 0n;
}

/** Whether this process may mount a tmpfs (probed on a throw-away mount point). */
export async function canMountTmpfs(): Promise<boolean> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hotconf-mount-probe-'));
  try {
    if (!(await succeeds('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]))) return false;
    await run('umount', [dir]);
    return true;
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/** A tiny tmpfs at `dir` (created), for a full-disk test; dispose unmounts it (lazily if busy) and removes it. */
export async function tmpfs(dir: string, size: string): Promise<AsyncDisposable> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  return {
    async [Symbol.asyncDispose]() {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A field of /proc/<pid>/status (`VmRSS`, `Uid`…), as its text. */
export async function procStatus(pid: number, field: string): Promise<string> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return line.slice(field.length + 1).trim();
}

/** Resident memory of a process, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  return Number.parseInt(await procStatus(pid, 'VmRSS'), 10) / 1024;
}

/** What a running sidecar serves for `name`: the parsed JSON, or undefined on any non-200 answer. */
export async function served(url: string, name: string, headers: Record<string, string> = {}): Promise<unknown> {
  const res = await fetch(`${url}/v1/configs/${name}`, { headers });
  if (res.status !== 200) {
    await res.body?.cancel();
    return undefined;
  }
  return res.json();
}

export interface ServedStatus {
  version: number;
  configs: Array<{ name: string; state: string; error?: { code: string; message: string } | null }>;
}

export async function servedStatus(url: string, headers: Record<string, string> = {}): Promise<ServedStatus> {
  return (await (await fetch(`${url}/v1/status`, { headers })).json()) as ServedStatus;
}

/** The API url of a daemon started with `--http 127.0.0.1:0`. */
export async function apiUrl(d: { line(match: (l: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>> }) {
  return String((await d.line((l) => l.msg === 'http listening', 'the API listening', 20_000)).url);
}
