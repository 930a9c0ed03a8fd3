// Drives the real `hotconf` CLI (dist/cli/main.js, built by `npm test`'s pretest) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { until } from '../helpers.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BIN = path.join(ROOT, 'dist', 'cli', 'main.js');

/** Environment for a child: no inherited HOTCONF_* or NOTIFY_SOCKET, JSON logs. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HOTCONF_') && k !== 'NOTIFY_SOCKET' && !k.startsWith('WATCHDOG_')) env[k] = v;
  return { ...env, ...extra };
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs any command to completion, collecting its output. */
export function runCommand(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs `hotconf …args` to completion. */
export function hotconf(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  return runCommand(process.execPath, [BIN, ...args], { env: childEnv(options.env), cwd: options.cwd ?? ROOT });
}

export interface Daemon extends AsyncDisposable {
  child: ChildProcess;
  /** Every stdout line parsed as JSON (non-JSON lines are kept as { raw }). */
  lines: Array<Record<string, unknown>>;
  stderr(): string;
  /** Resolves with the first line matching, waiting up to the deadline. */
  line(match: (l: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
}

/**
 * Starts `hotconf …args` in the background (e.g. `run`), collecting its log lines. `prefix` runs it under another
 * command that ends by exec'ing its arguments (`setpriv --bounding-set=… …`, `unshare -U -r …`), so that signals
 * sent to the child still reach the daemon itself.
 */
export function startHotconf(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; prefix?: readonly string[] } = {}): Daemon {
  const [cmd, ...argv] = [...(options.prefix ?? []), process.execPath, BIN, ...args] as [string, ...string[]];
  const child = spawn(cmd, argv, { env: childEnv(options.env), cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      lines.push(typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : { raw: text });
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => err,
    line: (match, what, timeoutMs = 10_000) => until(() => lines.find(match), what, { timeoutMs }),
    exited,
    signal: (sig) => child.kill(sig),
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
