// One program run with a deadline, for `notify.command` and `validate.command`: argv without a shell, SIGTERM at the
// deadline (or on abort) and SIGKILL a little later, a bounded part of what it printed, and how it ended.
import { spawn } from 'node:child_process';

export interface BoundedRunOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Deadline, in ms: then SIGTERM, then SIGKILL `killAfterMs` later. */
  timeoutMs: number;
  killAfterMs: number;
  /** Run in a process group of its own, signalled as a whole, and killed whole once the command has ended (what
   *  it left running goes with it). Default false: only the child is signalled. */
  group?: boolean;
  /** Terminates the run as the deadline does. */
  abort?: AbortSignal;
  /** Which output is kept: stderr only (stdout ignored), or both as they come. */
  capture: 'stderr' | 'both';
  /** Keep the first `chars` characters ('head') or the last ('tail'). */
  keep: 'head' | 'tail';
  chars: number;
}

export interface BoundedRun {
  /** Exit code, null when killed by a signal or never run. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The deadline passed (whatever the exit). */
  timedOut: boolean;
  /** The program could not be run at all. */
  error?: Error;
  output: string;
}

/** Runs `argv` to its end under `o`; never rejects. */
export function runBounded(argv: readonly [string, ...string[]], o: BoundedRunOptions): Promise<BoundedRun> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(file, args, { env: o.env, cwd: o.cwd, stdio: ['ignore', o.capture === 'both' ? 'pipe' : 'ignore', 'pipe'], shell: false, detached: o.group === true });
    const kill = (signal: NodeJS.Signals) => {
      if (o.group !== true) {
        child.kill(signal);
        return;
      }
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // ESRCH: the group is gone already
      }
    };
    const terminate = () => {
      kill('SIGTERM');
      killTimer ??= setTimeout(() => kill('SIGKILL'), o.killAfterMs);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, o.timeoutMs);
    o.abort?.addEventListener('abort', terminate);
    const take = (chunk: string) => {
      if (o.keep === 'tail') output = (output + chunk).slice(-o.chars);
      else if (output.length < o.chars) output += chunk.slice(0, o.chars - output.length);
    };
    child.stdout?.setEncoding('utf8').on('data', take);
    child.stderr?.setEncoding('utf8').on('data', take);
    let settled = false;
    const finish = (run: Omit<BoundedRun, 'timedOut' | 'output'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      o.abort?.removeEventListener('abort', terminate);
      if (o.group === true) kill('SIGKILL');
      resolve({ ...run, timedOut, output });
    };
    child.on('error', (error) => finish({ code: null, signal: null, error }));
    child.on('close', (code, signal) => finish({ code, signal }));
  });
}
