// `validate.command`: the application's own checker (`promtool check config`, `nginx -t`) as the pipeline's
// application check. Each candidate version is laid out as the source holds it (same file names, exact bytes) in a
// private directory, the command runs over it (argv, no shell, `{dir}` replaced, its own process group, a deadline),
// and a non-zero exit refuses the version with what the command said. `hotconf check` runs the same.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { HotconfError } from '../errors.js';
import type { AppCheck, Candidate } from '../pipeline/index.js';
import { runBounded } from '../publish/command.js';
import { notifyEnvironment } from '../publish/notifiers.js';
import { runtimeDirOf } from './reload.js';

export interface ValidateSettings {
  /** argv, run without a shell; `{dir}` in any argument is the directory holding the candidate version. */
  command: string[];
  /** Deadline, in ms: then the command's process group is killed and the version refused. Default 10000. */
  timeoutMs?: number;
}

/** Default of `validate.timeoutMs`. */
export const VALIDATE_TIMEOUT_MS = 10_000;
/** What is kept of the command's output (stdout and stderr, interleaved as they come) before it is bounded again. */
const CAPTURE_CHARS = 64 * 1024;
/** After SIGTERM to the group at the deadline, SIGKILL this much later. */
const KILL_AFTER_MS = 1000;

/** Throws E_OPTIONS when `validate` is unusable. */
export function checkValidate(v: ValidateSettings): Required<ValidateSettings> {
  const { command, timeoutMs = VALIDATE_TIMEOUT_MS } = v;
  if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string') || command[0] === '') {
    throw new HotconfError('E_OPTIONS', 'validate.command must be a non-empty array of strings (argv, no shell)');
  }
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new HotconfError('E_OPTIONS', 'validate.timeoutMs must be a number > 0');
  return { command: [...command], timeoutMs };
}

/**
 * The check hook that runs `validate.command` over each candidate. Where the directories go: `$RUNTIME_DIRECTORY`
 * (systemd's RuntimeDirectory=, private to the unit) when set, else the temp dir; each is 0700 and removed after
 * the run. The command's environment is the one notify commands get (credentials and control variables stripped).
 */
export function commandCheck(settings: ValidateSettings, logger: Logger, env: NodeJS.ProcessEnv = process.env): AppCheck {
  const o = checkValidate(settings);
  const base = runtimeDirOf(env) ?? tmpdir();
  return async (candidate) => {
    const dir = await mkdtemp(path.join(base, 'hotconf-check-'));
    try {
      await layOut(candidate, dir);
      const t0 = performance.now();
      const result = await runOver(o, dir, notifyEnvironment(env));
      const ms = Math.round(performance.now() - t0);
      if (result.ok) {
        logger.debug({ command: o.command[0], ms }, 'validate.command accepted the candidate');
        return undefined;
      }
      // The candidate's directory means nothing to a reader: names are shown as the source has them.
      const said = result.output.split(`${dir}/`).join('').split(dir).join('.');
      return [`${o.command[0]} ${result.why}${said.trim() === '' ? '' : `: ${said}`}`];
    } finally {
      await rm(dir, { recursive: true, force: true }).catch((err: unknown) => logger.warn({ err, dir }, 'could not remove the check directory'));
    }
  };
}

/** Every config of the candidate under its source's name with its exact text (a config kept without its text,
 *  which the pipeline does not do when a check is set, is written as JSON). */
async function layOut(candidate: Candidate, dir: string): Promise<void> {
  for (const entry of candidate.configs.values()) {
    const rel = entry.source?.file ?? `${entry.name}.json`;
    const file = path.join(dir, ...rel.split('/'));
    if (!file.startsWith(dir + path.sep)) throw new Error(`config ${JSON.stringify(entry.name)} cannot be laid out safely`);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, entry.source?.text ?? `${JSON.stringify(entry.value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  }
}

/** Runs the command in its own process group; the whole group is killed at the deadline and after the run. */
async function runOver(o: Required<ValidateSettings>, dir: string, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; why: string; output: string }> {
  const argv = o.command.map((a) => a.split('{dir}').join(dir)) as [string, ...string[]];
  const run = await runBounded(argv, { env, cwd: dir, timeoutMs: o.timeoutMs, killAfterMs: KILL_AFTER_MS, group: true, capture: 'both', keep: 'head', chars: CAPTURE_CHARS });
  const { output } = run;
  if (run.error !== undefined) return { ok: false, why: `could not run: ${run.error.message}`, output };
  if (run.timedOut) return { ok: false, why: `did not finish within ${o.timeoutMs} ms (validate.timeoutMs): killed`, output };
  if (run.code === 0) return { ok: true, why: 'exited 0', output };
  return { ok: false, why: run.code === null ? `was killed by ${run.signal}` : `exited with code ${run.code}`, output };
}
