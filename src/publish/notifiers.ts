// Telling the application that a new version is there: a webhook (POST, retried with backoff and full jitter), a
// signal (to a pid, or one read from a pid file each time), a command (argv, no shell, with a deadline). One Lane
// per target delivers one notice at a time; a newer version replaces a pending one, and what a notice says is
// relative to what that target last acknowledged, so a notice replaced or failed loses nothing. Every final
// result carries its reason (a webhook's status and the start of its answer), for the log, /v1/status and metrics.
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { sleep } from '../async.js';
import { escapeControl } from '../names.js';
import type { ConfigEntry, Logger, Snapshot } from '../store/index.js';
import { runBounded } from './command.js';
import { describe, fail } from './errors.js';

export interface WebhookOptions {
  /** http(s) URL that receives `POST {version, changed, removed, hashes}`. Redirects are not followed. */
  url: string;
  /** Deadline of one attempt, in ms. Default 5000. */
  timeoutMs?: number;
  /** Attempts after the first. Default 5. */
  retries?: number;
  /** First backoff, in ms, doubled each retry, with full jitter. Default 200. */
  backoffMs?: number;
  /** Ceiling on one backoff, in ms. Default 10000. */
  maxBackoffMs?: number;
  /** Status codes counted as success. Default [200, 201, 202, 204]. */
  successCodes?: number[];
  /** Extra request headers (e.g. authorization). Their values are never logged. Default none. */
  headers?: Record<string, string>;
}

export interface SignalOptions {
  /** Process to signal. One of `pid` and `pidFile` is required. */
  pid?: number;
  /** File holding the pid, read again before every signal (the application may have restarted). */
  pidFile?: string;
  /** Default `SIGHUP`. */
  signal?: NodeJS.Signals;
}

export interface CommandOptions {
  /** argv, run without a shell. Its environment is the daemon's without the variables that carry credentials or
   *  control (every `HOTCONF_*`, systemd's `NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_*`, `CREDENTIALS_DIRECTORY`; see
   *  {@link notifyEnvironment}), plus HOTCONF_VERSION, HOTCONF_CHANGED and HOTCONF_REMOVED (JSON arrays of names)
   *  and HOTCONF_PUBLISH_DIR (when publishing). */
  command: string[];
  /** Deadline, in ms; then SIGTERM, then SIGKILL 2 s later. Default 30000. */
  timeoutMs?: number;
}

/** Who is told after each publish; the three run concurrently, each one notice at a time. */
export interface NotifyOptions {
  /** From the publisher's start, how long a webhook whose connection is refused (the application is not listening
   *  yet) is looked at again quietly (debug log, every second at most, no attempt counted), so that the application
   *  gets the current version as soon as it listens. Past it, a refused connection is an attempt like any failure.
   *  In ms. Default 60000. */
  startupGraceMs?: number;
  /** POST a JSON notice. Default: none. */
  webhook?: WebhookOptions;
  /** Signal the application's process. Default: none. */
  signal?: SignalOptions;
  /** Run a command. Default: none. */
  command?: CommandOptions;
}

/** What a notice says: `changed`/`removed` are relative to what that target last acknowledged. */
export interface Notice {
  version: number;
  changed: string[];
  removed: string[];
  hashes: Record<string, string>;
}

export type Outcome = 'ok' | 'failed' | 'superseded';

/** What one delivery came to: its outcome, and for a failure the reason (`HTTP 500: <start of the body>`). */
export interface Delivery {
  outcome: Outcome;
  reason?: string;
}

/** The longest part of a refusing webhook's answer kept for the log and the status, in bytes. */
export const BODY_EXCERPT_BYTES = 512;
/** Longest pause between two looks at an application that is not listening yet, during the start-up grace. */
const GRACE_POLL_MAX_MS = 1000;

interface SignalTarget {
  pid: number | undefined;
  pidFile: string | undefined;
  signal: NodeJS.Signals;
}

export type Target =
  | { kind: 'webhook'; options: Required<WebhookOptions> }
  | { kind: 'signal'; options: SignalTarget }
  | { kind: 'command'; options: Required<CommandOptions> };

const KILL_AFTER_MS = 2000;
const STDERR_TAIL_CHARS = 500;

let userAgentText: Promise<string> | undefined;

/** `hotconf/<version>`, read once from package.json; the webhook's User-Agent. */
export function userAgent(): Promise<string> {
  userAgentText ??= readFile(new URL('../../package.json', import.meta.url), 'utf8')
    .then((text) => `hotconf/${(JSON.parse(text) as { version: string }).version}`)
    .catch(() => 'hotconf');
  return userAgentText;
}

/** The targets `notify` names, checked, with their defaults; throws E_OPTIONS saying what is wrong. */
export function checkNotify(n: NotifyOptions | undefined): Target[] {
  const targets: Target[] = [];
  const positive = (v: number, what: string) => (Number.isFinite(v) && v > 0 ? v : fail(`notify.${what} must be a number > 0`));
  const nonNegative = (v: number, what: string) => (Number.isFinite(v) && v >= 0 ? v : fail(`notify.${what} must be a number >= 0`));
  if (n?.startupGraceMs !== undefined) nonNegative(n.startupGraceMs, 'startupGraceMs');
  if (n?.webhook) {
    const w = n.webhook;
    if (!/^https?:$/.test(URL.parse(w.url)?.protocol ?? '')) fail('notify.webhook.url must be an http(s) URL');
    const retries = w.retries ?? 5;
    if (!Number.isInteger(retries) || retries < 0) fail('notify.webhook.retries must be an integer >= 0');
    const successCodes = w.successCodes ?? [200, 201, 202, 204];
    if (!Array.isArray(successCodes) || !successCodes.every(Number.isInteger)) fail('notify.webhook.successCodes must be integers');
    const headers = { ...w.headers };
    for (const [name, value] of Object.entries(headers)) {
      // Checked here, where the message can leave the value out (fetch's own error would quote it).
      if (typeof value !== 'string' || /[\r\n\0]/.test(value) || !/^[!#$%&'*+.^`|~\w-]+$/.test(name)) {
        fail(`notify.webhook.headers: invalid header ${JSON.stringify(name)}`);
      }
    }
    const options = {
      url: w.url,
      timeoutMs: positive(w.timeoutMs ?? 5000, 'webhook.timeoutMs'),
      retries,
      backoffMs: nonNegative(w.backoffMs ?? 200, 'webhook.backoffMs'),
      maxBackoffMs: nonNegative(w.maxBackoffMs ?? 10_000, 'webhook.maxBackoffMs'),
      successCodes: [...successCodes],
      headers,
    };
    targets.push({ kind: 'webhook', options });
  }
  if (n?.signal) {
    const { pid, pidFile, signal = 'SIGHUP' } = n.signal;
    if ((pid === undefined) === (pidFile === undefined)) fail('notify.signal needs exactly one of pid and pidFile');
    if (pid !== undefined) {
      const why = whyNotSignalable(pid);
      if (why !== undefined) fail(`notify.signal.pid: ${why}`);
    }
    if (!(signal in osConstants.signals)) fail(`notify.signal.signal: unknown signal ${signal}`);
    targets.push({ kind: 'signal', options: { pid, pidFile: pidFile === undefined ? undefined : path.resolve(pidFile), signal } });
  }
  if (n?.command) {
    const { command, timeoutMs = 30_000 } = n.command;
    if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string')) {
      fail('notify.command.command must be a non-empty array of strings (argv, no shell)');
    }
    targets.push({ kind: 'command', options: { command: [...command], timeoutMs: positive(timeoutMs, 'command.timeoutMs') } });
  }
  return targets;
}

/** Delivers one notice to one target, retries included; resolves with the final outcome. `wake` cuts a webhook's
 *  backoff (a newer version supersedes it); `hard` cuts a request or command in flight (close gave up waiting). */
export function deliver(
  target: Target,
  notice: Notice,
  ctx: { wake: AbortSignal; hard: AbortSignal; log: Logger; ua: string; publishDir: string | undefined; graceUntil: number },
): Promise<Delivery> {
  const { wake, hard, log, ua, graceUntil } = ctx;
  switch (target.kind) {
    case 'webhook':
      return postWebhook(target.options, notice, { wake, hard, log, ua, graceUntil });
    case 'signal':
      return sendSignal(target.options, log);
    case 'command': {
      const env = {
        ...notifyEnvironment(process.env),
        HOTCONF_VERSION: String(notice.version),
        // JSON arrays: names may hold commas (and any character but `\\` and controls), so a joined list was ambiguous.
        HOTCONF_CHANGED: JSON.stringify(notice.changed),
        HOTCONF_REMOVED: JSON.stringify(notice.removed),
        ...(ctx.publishDir === undefined ? {} : { HOTCONF_PUBLISH_DIR: ctx.publishDir }),
      };
      return runCommand(target.options, env, hard, log);
    }
  }
}

/** One notify target: delivers one notice at a time; a newer version replaces the pending one and cuts the
 *  backoff of the one in flight. `changed`/`removed` are computed from what the target last acknowledged, so a
 *  notice that was replaced or failed loses nothing. */
export class Lane {
  readonly target: Target;
  /** The last final result (after retries; a superseded notice has none), for status. */
  last: (Delivery & { version: number; at: number }) | undefined;
  /** The last version the target acknowledged. */
  lastOkVersion: number | undefined;
  /** The version being delivered now (retries and the start-up grace included). */
  delivering: number | undefined;
  readonly #hooks: LaneHooks;
  #pending: Snapshot | undefined;
  #base: ReadonlyMap<string, ConfigEntry>;
  #loop: Promise<void> | undefined;
  #wake = new AbortController();
  #stopped = false;

  constructor(target: Target, base: ReadonlyMap<string, ConfigEntry>, hooks: LaneHooks) {
    this.target = target;
    this.#base = base;
    this.#hooks = hooks;
  }

  get idle(): boolean {
    return this.#loop === undefined && (this.#pending === undefined || this.#stopped);
  }

  get done(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  push(snap: Snapshot): void {
    if (this.#stopped) return;
    this.#pending = snap;
    this.#wake.abort();
    this.#loop ??= this.#run();
  }

  /** No new attempt starts; the one in flight finishes (its backoff is cut). */
  stop(): void {
    this.#stopped = true;
    this.#wake.abort();
  }

  async #run(): Promise<void> {
    await Promise.resolve(); // #loop is assigned before anything below can clear it
    try {
      for (let snap = this.#pending; snap !== undefined && !this.#stopped; snap = this.#pending) {
        this.#pending = undefined;
        this.#wake = new AbortController();
        let result: Delivery;
        this.delivering = snap.version;
        try {
          result = await this.#hooks.deliver(noticeBetween(this.#base, snap), this.#wake.signal);
        } catch (err) {
          this.#hooks.log.error({ err, notify: this.target.kind, version: snap.version }, 'notify failed');
          result = { outcome: 'failed', reason: describe(err) };
        } finally {
          this.delivering = undefined;
        }
        if (result.outcome === 'ok') {
          this.#base = snap.configs;
          this.lastOkVersion = snap.version;
        }
        if (result.outcome !== 'superseded') {
          this.last = { ...result, version: snap.version, at: Date.now() };
          this.#hooks.report(result, snap.version);
        }
      }
    } finally {
      this.#loop = undefined;
      this.#hooks.settled(this);
    }
  }
}

export interface LaneHooks {
  deliver(notice: Notice, wake: AbortSignal): Promise<Delivery>;
  report(result: Delivery, version: number): void;
  settled(lane: Lane): void;
  log: Logger;
}

/**
 * POSTs the notice. A 2xx of `successCodes` is done; any other 4xx (but 408 and 429) is the application's definite
 * refusal (its answer says why) and is not tried again; a 5xx, 408, 429, a timeout or a network error is retried
 * `retries` times with backoff. A refused connection during the start-up grace is the application not listening
 * yet: looked at again quietly (debug), without counting attempts, until it listens or the grace ends.
 */
async function postWebhook(
  o: Required<WebhookOptions>,
  notice: Notice,
  ctx: { wake: AbortSignal; hard: AbortSignal; log: Logger; ua: string; graceUntil: number },
): Promise<Delivery> {
  const headers = new Headers(o.headers);
  headers.set('content-type', 'application/json');
  headers.set('user-agent', ctx.ua);
  const body = JSON.stringify(notice);
  const url = safeUrl(o.url);
  let gracePolls = 0;
  for (let attempt = 1; ; attempt++) {
    let problem: { status: number; body: string } | { error: string; code: string | undefined };
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(o.timeoutMs), ctx.hard]);
      const res = await fetch(o.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
      if (o.successCodes.includes(res.status)) {
        await res.body?.cancel();
        ctx.log.info({ url, status: res.status, attempt }, 'webhook delivered');
        return { outcome: 'ok' };
      }
      problem = { status: res.status, body: await bodyExcerpt(res) };
    } catch (err) {
      problem = { error: describe(err), code: errorCode(err) };
    }
    const refused = 'status' in problem && problem.status >= 400 && problem.status < 500 && problem.status !== 408 && problem.status !== 429;
    const reason = 'status' in problem ? `HTTP ${problem.status}${problem.body === '' ? '' : `: ${problem.body}`}` : problem.error;
    if (!('status' in problem) && problem.code === 'ECONNREFUSED' && Date.now() < ctx.graceUntil && !ctx.hard.aborted) {
      // Not an attempt: the application is not there yet (a sidecar often starts first).
      attempt--;
      if (!(await gracePause(gracePolls++, ctx, { url }, 'webhook: application not listening yet (start-up grace); looking again'))) return { outcome: 'superseded' };
      continue;
    }
    if (refused || attempt > o.retries || ctx.hard.aborted) {
      ctx.log.error({ url, attempts: attempt, ...problem, ...(refused ? { refused: true } : {}) }, refused ? 'webhook refused the notice' : 'webhook failed');
      return { outcome: 'failed', reason };
    }
    const backoffMs = Math.round(Math.random() * Math.min(o.maxBackoffMs, o.backoffMs * 2 ** (attempt - 1)));
    ctx.log.warn({ url, attempt, backoffMs, ...problem }, 'webhook attempt failed, will retry');
    await sleep(backoffMs, ctx.wake);
    if (ctx.wake.aborted) {
      ctx.log.debug({ url }, 'webhook retries dropped: a newer version (or close) supersedes them');
      return { outcome: 'superseded' };
    }
  }
}

/** One quiet pause of the start-up grace: 100 ms doubling to GRACE_POLL_MAX_MS, never past the grace's end.
 *  False when a newer version (or close) cut it: the caller's notice is superseded. */
async function gracePause(polls: number, ctx: { wake: AbortSignal; log: Logger; graceUntil: number }, fields: object, msg: string): Promise<boolean> {
  const leftMs = ctx.graceUntil - Date.now();
  const pauseMs = Math.max(1, Math.min(GRACE_POLL_MAX_MS, 100 * 2 ** Math.min(polls, 4), leftMs));
  ctx.log.debug({ ...fields, graceLeftMs: leftMs }, msg);
  await sleep(pauseMs, ctx.wake);
  return !ctx.wake.aborted;
}

/** The start of an answer's body, at most BODY_EXCERPT_BYTES, decoded as UTF-8 with control characters escaped
 *  (it goes into a log line and /v1/status); the rest is never read. */
async function bodyExcerpt(res: Response): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < BODY_EXCERPT_BYTES) {
      const { value, done } = (await reader.read()) as { value: Uint8Array | undefined; done: boolean };
      if (done || value === undefined) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
  } catch {
    // what arrived is enough to say why
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const buf = Buffer.concat(chunks);
  const cut = buf.byteLength > BODY_EXCERPT_BYTES;
  // A cut inside a multi-byte character decodes as U+FFFD: harmless in a log.
  const text = escapeControl(buf.subarray(0, BODY_EXCERPT_BYTES).toString('utf8').trimEnd());
  return cut ? `${text}…` : text;
}

/** The system error code behind a failed fetch (undici wraps it in `cause`), e.g. ECONNREFUSED. */
function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}

/**
 * The environment a notify command inherits: the daemon's, without what carries credentials or lets the child act
 * as the daemon. Every `HOTCONF_*` variable goes (HOTCONF_HTTP_TOKEN, HOTCONF_ETCD_PASSWORD, and the settings
 * variables, which name the token, password and key files), and so do systemd's NOTIFY_SOCKET (the child could
 * report READY or feed the watchdog in hotconf's name), WATCHDOG_USEC/WATCHDOG_PID, LISTEN_FDS/LISTEN_PID/
 * LISTEN_FDNAMES (socket activation) and CREDENTIALS_DIRECTORY (systemd's LoadCredential= secrets).
 */
export function notifyEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (!STRIPPED_ENV.test(key)) out[key] = value;
  return out;
}
const STRIPPED_ENV = /^(HOTCONF_.*|NOTIFY_SOCKET|WATCHDOG_(USEC|PID)|LISTEN_(FDS|PID|FDNAMES)|CREDENTIALS_DIRECTORY)$/;

/**
 * Why `pid` must not be signalled, or undefined when it may be; one rule for `pid:` and a pid file's content.
 * 0 and negatives are process groups for kill(2), 1 is init (SIGHUP makes systemd reload), and hotconf itself is
 * not the application. Its parent may be (an application that starts hotconf as its own child), so it is allowed.
 */
export function whyNotSignalable(pid: number): string | undefined {
  if (!Number.isSafeInteger(pid) || pid < 2) return `${pid} is not an application's process id (an integer >= 2: 0 and negatives are process groups, 1 is init)`;
  if (pid === process.pid) return `${pid} is hotconf itself`;
  return undefined;
}

async function sendSignal(o: SignalTarget, log: Logger): Promise<Delivery> {
  let pid = o.pid;
  try {
    if (pid === undefined) {
      const text = (await readFile(o.pidFile!, 'utf8')).trim();
      if (!/^-?\d{1,10}$/.test(text)) throw new Error(`${o.pidFile}: not a process id: ${JSON.stringify(text.slice(0, 20))}`);
      pid = Number(text);
    }
    const why = whyNotSignalable(pid);
    if (why !== undefined) throw new Error(`refusing to signal pid ${pid}${o.pidFile ? ` (from ${o.pidFile})` : ''}: ${why}`);
    try {
      process.kill(pid, o.signal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`${code === 'ESRCH' ? 'no such process' : code}: pid ${pid}${o.pidFile ? ` (from ${o.pidFile})` : ''}`);
    }
    log.info({ pid, signal: o.signal }, 'signal sent');
    return { outcome: 'ok' };
  } catch (err) {
    log.error({ pid, pidFile: o.pidFile, signal: o.signal, error: describe(err) }, 'signal failed');
    return { outcome: 'failed', reason: describe(err) };
  }
}

async function runCommand(o: Required<CommandOptions>, env: NodeJS.ProcessEnv, hard: AbortSignal, log: Logger): Promise<Delivery> {
  const t0 = performance.now();
  const command = o.command[0];
  const run = await runBounded(o.command as [string, ...string[]], {
    env,
    timeoutMs: o.timeoutMs,
    killAfterMs: KILL_AFTER_MS,
    abort: hard,
    capture: 'stderr',
    keep: 'tail',
    chars: STDERR_TAIL_CHARS,
  });
  const ms = Math.round(performance.now() - t0);
  if (run.error === undefined && run.code === 0 && !run.timedOut) {
    log.info({ command, ms }, 'command done');
    return { outcome: 'ok' };
  }
  const stderr = run.output;
  let why: string;
  if (run.error !== undefined) {
    why = describe(run.error);
    log.error({ command, ms, error: why, stderr }, 'command failed');
  } else {
    why = run.timedOut ? `timed out after ${o.timeoutMs} ms` : run.signal !== null ? `killed by ${run.signal}` : `exit code ${run.code}`;
    log.error({ command, ms, exitCode: run.code, signal: run.signal, ...(run.timedOut ? { timeoutMs: o.timeoutMs } : {}), stderr }, 'command failed');
  }
  const tail = escapeControl(stderr.trim().slice(-BODY_EXCERPT_BYTES));
  return { outcome: 'failed', reason: `${why}${tail === '' ? '' : `: ${tail}`}` };
}

export function noticeBetween(base: ReadonlyMap<string, ConfigEntry>, snap: Snapshot): Notice {
  const hashes: Record<string, string> = {};
  const changed: string[] = [];
  for (const [name, entry] of snap.configs) {
    hashes[name] = entry.hash;
    if (base.get(name)?.hash !== entry.hash) changed.push(name);
  }
  const removed = [...base.keys()].filter((name) => !snap.configs.has(name));
  return { version: snap.version, changed: changed.sort(), removed: removed.sort(), hashes };
}

/** The target as /v1/status names it: the webhook's URL as logged, the pid or pid file, the command's program. */
export function describeTarget(target: Target): string {
  switch (target.kind) {
    case 'webhook':
      return safeUrl(target.options.url);
    case 'signal':
      return `${target.options.signal} ${target.options.pidFile ?? `pid ${target.options.pid}`}`;
    case 'command':
      return target.options.command[0]!;
  }
}

/** The URL as it may be logged: no credentials, no query (tokens live there too). */
function safeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
