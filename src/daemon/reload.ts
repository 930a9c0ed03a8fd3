// The outcome of each reload, where `hotconf reload` (the unit's ExecReload=) can wait for it. A SIGHUP
// carries no reply, and systemd < 253 does not wait for RELOADING=1/READY=1 after ExecReload=, so the daemon
// records every reload's outcome in $RUNTIME_DIRECTORY/reload.json (written whole, then renamed) with the
// CLOCK_MONOTONIC time it started. `hotconf reload` notes the time, sends SIGHUP and waits for an outcome from
// that pid that started later: a reload that began after the command did has read every edit made before it.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sleep } from '../async.js';

/** What the daemon records after its start and after each reload. */
export interface ReloadOutcome {
  /** The daemon's process id. */
  readonly pid: number;
  /** 'start', or what triggered the reload ('SIGHUP', 'settings file changed'). */
  readonly reason: string;
  /** CLOCK_MONOTONIC, in µs, when the reload began (a decimal string: it exceeds 2^53 on long uptimes). */
  readonly startedAtUs: string;
  readonly durationMs: number;
  /** True when hotconf.yaml was applied (or unchanged) and every config is valid after the rescan. */
  readonly ok: boolean;
  /** The store's version after the reload. */
  readonly version: number;
  /** Why it failed, one line each (`file:line:col: message`); empty when ok. */
  readonly problems: readonly string[];
}

const FILE = 'reload.json';

/** CLOCK_MONOTONIC in µs: libuv's hrtime is that clock, the same in every process of the machine (and of a
 *  systemd unit, which shares its time namespace), unlike the wall clock it never jumps. */
export const monotonicUs = (): bigint => process.hrtime.bigint() / 1000n;

/** The directory systemd made for the unit (RuntimeDirectory=; the first one when it names several). */
export function runtimeDirOf(env: NodeJS.ProcessEnv): string | undefined {
  return env.RUNTIME_DIRECTORY?.split(':')[0] || undefined;
}

/** Replaces the outcome file in one rename, so that a reader never sees half of it. */
export async function writeReloadOutcome(dir: string, outcome: ReloadOutcome): Promise<void> {
  const tmp = path.join(dir, `.${FILE}.${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(outcome)}\n`, { mode: 0o600 });
  await rename(tmp, path.join(dir, FILE));
}

async function readReloadOutcome(dir: string): Promise<ReloadOutcome | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, FILE), 'utf8')) as ReloadOutcome;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export type ReloadWait =
  | { readonly done: true; readonly outcome: ReloadOutcome }
  /** The reload was not requested, or its outcome never came; `message` says why. */
  | { readonly done: false; readonly message: string };

/**
 * `hotconf reload`: sends SIGHUP to `pid` and resolves with the outcome of a reload that started after the
 * call (a reload in progress when the signal lands is followed by one more: the daemon coalesces, never drops).
 */
export async function reloadAndWait(pid: number, options: { env?: NodeJS.ProcessEnv; timeoutMs: number; pollMs?: number }): Promise<ReloadWait> {
  const dir = runtimeDirOf(options.env ?? process.env);
  if (dir === undefined) return { done: false, message: 'no $RUNTIME_DIRECTORY: the daemon records reload outcomes there (systemd sets it with RuntimeDirectory=)' };
  const before = await readReloadOutcome(dir);
  if (before?.pid !== pid) {
    // Signalling anyway would reload without a way to report on it: an older daemon, or one started without
    // $RUNTIME_DIRECTORY. Say so, and change nothing.
    return {
      done: false,
      message: `process ${pid} records no reload outcome in ${path.join(dir, FILE)}${before ? ` (it is from process ${before.pid})` : ''}; nothing was sent. A daemon started before hotconf had \`hotconf reload\`, or without $RUNTIME_DIRECTORY, needs a restart`,
    };
  }
  const asked = monotonicUs();
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    return { done: false, message: `cannot signal process ${pid}: ${(err as Error).message}` };
  }
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    const outcome = await readReloadOutcome(dir);
    if (outcome?.pid === pid && BigInt(outcome.startedAtUs) > asked) return { done: true, outcome };
    if (!alive(pid)) return { done: false, message: `process ${pid} exited before its reload finished` };
    if (performance.now() > deadline) return { done: false, message: `no reload outcome from process ${pid} within ${options.timeoutMs} ms; the reload may still finish` };
    await sleep(options.pollMs ?? 20);
  }
}
