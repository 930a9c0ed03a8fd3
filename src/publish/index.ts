// The sidecar's hand-off to applications that read files and cannot link the library: the role configmap-reload
// and consul-template play, except that the application only ever sees validated config. Each committed version
// is written into a fresh hidden directory and swapped in with one rename of the `..data` symlink (the Kubernetes
// ConfigMap layout), then the application is told: webhook, signal and/or command. It runs as an ordinary store
// subscriber, so a slow disk or a dead receiver never delays a commit; failures are logged and reported, never fatal.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { stringify as toYaml } from 'yaml';
import { HotconfError } from '../errors.js';
import type { Hotconf } from '../hotconf.js';
import type { ConfigEntry, Logger, Snapshot, Unsubscribe } from '../store/index.js';
import { redact } from '../validate/index.js';

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
  /** argv, run without a shell; env adds HOTCONF_VERSION, HOTCONF_CHANGED, HOTCONF_REMOVED (comma-joined) and
   *  HOTCONF_PUBLISH_DIR (when publishing). */
  command: string[];
  /** Deadline, in ms; then SIGTERM, then SIGKILL 2 s later. Default 30000. */
  timeoutMs?: number;
}

/** Who is told after each publish; the three run concurrently, each one notice at a time. */
export interface NotifyOptions {
  /** POST a JSON notice. Default: none. */
  webhook?: WebhookOptions;
  /** Signal the application's process. Default: none. */
  signal?: SignalOptions;
  /** Run a command. Default: none. */
  command?: CommandOptions;
}

export type NotifyKind = 'publish' | 'webhook' | 'signal' | 'command';

export interface PublisherOptions {
  /** Write every version into a directory. Default: no publishing, notify only. */
  publish?: PublishOptions;
  /** Targets told after each publish (and at start). Default none. */
  notify?: NotifyOptions;
  /** pino logger; a child `{ module: 'publish' }` is used. Default: silent. */
  logger?: Logger;
  /** Called with each final outcome (after retries) for metrics. A notice replaced by a newer one before it
   *  could be delivered has no outcome of its own: the newer one carries its changes. */
  onResult?: (kind: NotifyKind, ok: boolean, version: number) => void;
  /** How long close() waits for a publish or notice in flight before aborting it, in ms. Default 5000. */
  closeTimeoutMs?: number;
}

export interface Publisher extends AsyncDisposable {
  /** Replaces the notify targets while running (hot reload of the daemon's settings). Unchanged targets keep
   *  their state; a new target hears of the next version. Throws E_OPTIONS (targets untouched) on bad options. */
  setNotify(notify: NotifyOptions | undefined): void;
  /** Resolves when the current version has been published (or has failed to) and every notice for it settled. */
  idle(): Promise<void>;
  /** Idempotent: unsubscribes, lets work in flight finish (bounded by closeTimeoutMs), drops pending retries. */
  close(): Promise<void>;
}

/** What a notice says: `changed`/`removed` are relative to what that target last acknowledged. */
interface Notice {
  version: number;
  changed: string[];
  removed: string[];
  hashes: Record<string, string>;
}

type Outcome = 'ok' | 'failed' | 'superseded';

const DATA = '..data';
const DATA_TMP = '..data_tmp';
const VERSION_PREFIX = '..v';
const LINK_TMP_PREFIX = '..link_tmp-';
const WRITE_CONCURRENCY = 8;
const KILL_AFTER_MS = 2000;
const STDERR_TAIL_CHARS = 500;
const PUBLISH_RETRY_MS = { first: 1000, max: 60_000 };

let userAgent: Promise<string> | undefined;

/** Publishes the current snapshot at once (and notifies, so that an app started before the daemon catches up),
 *  then every committed version. Rejects with E_OPTIONS on bad options or an unusable `publish.dir`. */
export async function startPublisher(
  hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>,
  options: PublisherOptions,
): Promise<Publisher> {
  const publish = options.publish === undefined ? undefined : checkPublish(options.publish);
  const targets = checkNotify(options.notify);
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  if (!(closeTimeoutMs >= 0)) fail('closeTimeoutMs must be a number >= 0');
  const log = (options.logger ?? pino({ level: 'silent' })).child({ module: 'publish' });
  userAgent ??= readFile(new URL('../../package.json', import.meta.url), 'utf8')
    .then((text) => `hotconf/${(JSON.parse(text) as { version: string }).version}`)
    .catch(() => 'hotconf');
  const ua = await userAgent;
  let versions: string[] = [];
  if (publish) {
    for (const entry of hot.snapshot().configs.values()) {
      if (path.isAbsolute(entry.path) && isInside(entry.path, publish.dir)) fail(`publish dir ${publish.dir} holds the config ${entry.path}: it would feed itself`);
    }
    versions = await prepareDir(publish.dir, log);
  }
  const publisher = new Runner(hot, { publish, versions, log, ua, closeTimeoutMs, onResult: options.onResult });
  await publisher.start(targets);
  return publisher;
}

class Runner implements Publisher {
  readonly #hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>;
  readonly #publish: Required<PublishOptions> | undefined;
  readonly #log: Logger;
  readonly #ua: string;
  readonly #closeTimeoutMs: number;
  readonly #onResult: PublisherOptions['onResult'];
  /** Published version directories, oldest first; the last one is what `..data` points to. */
  readonly #versions: string[];
  #lanes: Lane[] = [];
  /** Lanes replaced by setNotify, finishing the attempt they have in flight. */
  readonly #retired = new Set<Lane>();
  #unsubscribe: Unsubscribe | undefined;
  /** Publish steps run one at a time, in this chain. */
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  /** The last snapshot a publish was attempted for, and whether that attempt failed (then it is retried). */
  #attempted: Snapshot | undefined;
  #failed = false;
  /** The last snapshot published (or, without publishing, handed to the lanes): what a new target starts from. */
  #published: Snapshot | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = PUBLISH_RETRY_MS.first;
  readonly #waiters = new Set<() => void>();
  /** Aborted when close() has waited long enough: cuts webhook requests and commands in flight. */
  readonly #hardStop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(
    hot: Pick<Hotconf, 'snapshot' | 'onConfigChange'>,
    o: { publish: Required<PublishOptions> | undefined; versions: string[]; log: Logger; ua: string; closeTimeoutMs: number; onResult: PublisherOptions['onResult'] },
  ) {
    this.#hot = hot;
    this.#publish = o.publish;
    this.#versions = o.versions;
    this.#log = o.log;
    this.#ua = o.ua;
    this.#closeTimeoutMs = o.closeTimeoutMs;
    this.#onResult = o.onResult;
  }

  async start(targets: readonly Target[]): Promise<void> {
    this.#lanes = this.#makeLanes(targets, new Map());
    // Subscribe before reading the snapshot, so that no commit falls between the two.
    this.#unsubscribe = this.#hot.onConfigChange(() => this.#enqueue());
    await this.#enqueue();
  }

  setNotify(notify: NotifyOptions | undefined): void {
    const targets = checkNotify(notify);
    if (this.#closing) return;
    const old = this.#lanes;
    this.#lanes = this.#makeLanes(targets, this.#published?.configs ?? new Map(), old);
    for (const lane of old.filter((l) => !this.#lanes.includes(l))) {
      lane.stop();
      if (!lane.idle) this.#retired.add(lane);
    }
    this.#log.info({ targets: this.#lanes.map((l) => l.target.kind) }, 'notify targets set');
  }

  async idle(): Promise<void> {
    while (!this.#isIdle()) await new Promise<void>((resolve) => this.#waiters.add(resolve));
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#unsubscribe?.();
    clearTimeout(this.#retryTimer);
    const lanes = [...this.#lanes, ...this.#retired];
    for (const lane of lanes) lane.stop();
    const work = Promise.allSettled([this.#queue, ...lanes.map((l) => l.done)]);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([work.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(r, this.#closeTimeoutMs, true)))]);
    clearTimeout(timer);
    if (late) {
      this.#log.warn({ timeoutMs: this.#closeTimeoutMs }, 'close: work still in flight, aborting it');
      this.#hardStop.abort();
    }
    this.#kick();
  }

  #isIdle(): boolean {
    if (this.#closing) return true;
    if (this.#queued > 0 || ![...this.#lanes, ...this.#retired].every((l) => l.idle)) return false;
    const done = this.#attempted;
    const now = this.#hot.snapshot();
    // Configs equal under a higher version: the store skipped us (a name added and removed again), nothing to do.
    return done !== undefined && (now.version <= done.version || sameConfigs(done, now));
  }

  /** Wakes idle() waiters to look again. */
  #kick(): void {
    for (const resolve of this.#waiters) resolve();
    this.#waiters.clear();
  }

  /** The one place publish steps go: serialized, caught, logged. The store awaits it, so it coalesces for us. */
  #enqueue(): Promise<void> {
    this.#queued++;
    this.#queue = this.#queue
      .then(() => (this.#closing ? undefined : this.#step()))
      .catch((err: unknown) => this.#log.error({ err }, 'publish step failed'))
      .finally(() => {
        this.#queued--;
        this.#kick();
      });
    return this.#queue;
  }

  /** Publishes the latest snapshot (always the latest: a burst publishes fewer versions but ends on the last),
   *  then hands it to every notify lane. A failed publish notifies no one and is retried. */
  async #step(): Promise<void> {
    const snap = this.#hot.snapshot();
    if (snap === this.#attempted && !this.#failed) return;
    let ok = true;
    if (this.#publish) {
      const t0 = performance.now();
      try {
        await this.#write(snap, this.#publish);
        this.#log.info({ version: snap.version, configs: snap.configs.size, ms: Math.round(performance.now() - t0) }, 'published');
      } catch (err) {
        ok = false;
        this.#log.error({ err, version: snap.version, dir: this.#publish.dir }, 'publish failed');
      }
      this.#report('publish', ok, snap.version);
    }
    this.#attempted = snap;
    this.#failed = !ok;
    clearTimeout(this.#retryTimer);
    if (ok) {
      this.#published = snap;
      this.#retryMs = PUBLISH_RETRY_MS.first;
      for (const lane of this.#lanes) lane.push(snap);
    } else {
      // The disk may come back before the next commit does: try again on our own, backing off.
      this.#retryTimer = setTimeout(() => void this.#enqueue(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, PUBLISH_RETRY_MS.max);
    }
  }

  /** One version, all or nothing: files into a fresh dir, then one rename of `..data`, then the visible links. */
  async #write(snap: Snapshot, o: Required<PublishOptions>): Promise<void> {
    const files = [...snap.configs.values()].map((entry) => render(entry, o));
    await mkdir(o.dir, { recursive: true });
    const name = `${VERSION_PREFIX}${snap.version}-${randomBytes(4).toString('hex')}`;
    const vdir = path.join(o.dir, name);
    await mkdir(vdir);
    try {
      const dirs = new Set([vdir, ...files.map((f) => path.dirname(path.join(vdir, f.rel)))]);
      await forEachLimit([...dirs], WRITE_CONCURRENCY, (d) => mkdir(d, { recursive: true }));
      await forEachLimit(files, WRITE_CONCURRENCY, (f) => writeDurable(path.join(vdir, f.rel), f.text));
      await forEachLimit([...dirs], WRITE_CONCURRENCY, fsyncDir);
      await rm(path.join(o.dir, DATA_TMP), { force: true });
      await symlink(name, path.join(o.dir, DATA_TMP));
      await rename(path.join(o.dir, DATA_TMP), path.join(o.dir, DATA));
    } catch (err) {
      await rm(vdir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    this.#versions.push(name);
    await fsyncDir(o.dir);
    await syncLinks(o.dir, new Set(files.map((f) => f.top)));
    for (const old of this.#versions.splice(0, Math.max(0, this.#versions.length - 1 - o.keepVersions))) {
      await rm(path.join(o.dir, old), { recursive: true, force: true }).catch((err: unknown) =>
        this.#log.warn({ err, dir: path.join(o.dir, old) }, 'could not remove an old version'),
      );
    }
  }

  #makeLanes(targets: readonly Target[], base: ReadonlyMap<string, ConfigEntry>, old: readonly Lane[] = []): Lane[] {
    return targets.map(
      (target) =>
        old.find((lane) => isDeepStrictEqual(lane.target, target)) ??
        new Lane(target, base, {
          deliver: (notice, wake) => this.#deliver(target, notice, wake),
          report: (ok, version) => this.#report(target.kind, ok, version),
          settled: (lane) => {
            if (lane.idle) this.#retired.delete(lane);
            this.#kick();
          },
          log: this.#log,
        }),
    );
  }

  #deliver(target: Target, notice: Notice, wake: AbortSignal): Promise<Outcome> {
    const log = this.#log.child({ notify: target.kind, version: notice.version });
    const hard = this.#hardStop.signal;
    switch (target.kind) {
      case 'webhook':
        return postWebhook(target.options, notice, { wake, hard, log, ua: this.#ua });
      case 'signal':
        return sendSignal(target.options, log);
      case 'command': {
        const env = {
          ...process.env,
          HOTCONF_VERSION: String(notice.version),
          HOTCONF_CHANGED: notice.changed.join(','),
          HOTCONF_REMOVED: notice.removed.join(','),
          ...(this.#publish ? { HOTCONF_PUBLISH_DIR: this.#publish.dir } : {}),
        };
        return runCommand(target.options, env, hard, log);
      }
    }
  }

  #report(kind: NotifyKind, ok: boolean, version: number): void {
    try {
      this.#onResult?.(kind, ok, version);
    } catch (err) {
      this.#log.error({ err }, 'onResult failed');
    }
  }
}

/** One notify target: delivers one notice at a time; a newer version replaces the pending one and cuts the
 *  backoff of the one in flight. `changed`/`removed` are computed from what the target last acknowledged, so a
 *  notice that was replaced or failed loses nothing. */
class Lane {
  readonly target: Target;
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
        let outcome: Outcome;
        try {
          outcome = await this.#hooks.deliver(noticeBetween(this.#base, snap), this.#wake.signal);
        } catch (err) {
          this.#hooks.log.error({ err, notify: this.target.kind, version: snap.version }, 'notify failed');
          outcome = 'failed';
        }
        if (outcome === 'ok') this.#base = snap.configs;
        if (outcome !== 'superseded') this.#hooks.report(outcome === 'ok', snap.version);
      }
    } finally {
      this.#loop = undefined;
      this.#hooks.settled(this);
    }
  }
}

interface LaneHooks {
  deliver(notice: Notice, wake: AbortSignal): Promise<Outcome>;
  report(ok: boolean, version: number): void;
  settled(lane: Lane): void;
  log: Logger;
}

async function postWebhook(
  o: Required<WebhookOptions>,
  notice: Notice,
  ctx: { wake: AbortSignal; hard: AbortSignal; log: Logger; ua: string },
): Promise<Outcome> {
  const headers = new Headers(o.headers);
  headers.set('content-type', 'application/json');
  headers.set('user-agent', ctx.ua);
  const body = JSON.stringify(notice);
  const url = safeUrl(o.url);
  for (let attempt = 1; ; attempt++) {
    let problem: { status: number } | { error: string };
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(o.timeoutMs), ctx.hard]);
      const res = await fetch(o.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
      await res.body?.cancel();
      if (o.successCodes.includes(res.status)) {
        ctx.log.info({ url, status: res.status, attempt }, 'webhook delivered');
        return 'ok';
      }
      problem = { status: res.status };
    } catch (err) {
      problem = { error: describe(err) };
    }
    if (attempt > o.retries || ctx.hard.aborted) {
      ctx.log.error({ url, attempts: attempt, ...problem }, 'webhook failed');
      return 'failed';
    }
    const backoffMs = Math.round(Math.random() * Math.min(o.maxBackoffMs, o.backoffMs * 2 ** (attempt - 1)));
    ctx.log.warn({ url, attempt, backoffMs, ...problem }, 'webhook attempt failed, will retry');
    try {
      await delay(backoffMs, undefined, { signal: ctx.wake });
    } catch {
      ctx.log.debug({ url }, 'webhook retries dropped: a newer version (or close) supersedes them');
      return 'superseded';
    }
  }
}

async function sendSignal(o: SignalTarget, log: Logger): Promise<Outcome> {
  let pid = o.pid;
  try {
    if (pid === undefined) {
      const text = (await readFile(o.pidFile!, 'utf8')).trim();
      if (!/^[1-9]\d{0,9}$/.test(text)) throw new Error(`${o.pidFile}: not a process id: ${JSON.stringify(text.slice(0, 20))}`);
      pid = Number(text);
    }
    if (pid === process.pid) throw new Error(`refusing to signal hotconf itself (pid ${pid})`);
    try {
      process.kill(pid, o.signal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`${code === 'ESRCH' ? 'no such process' : code}: pid ${pid}${o.pidFile ? ` (from ${o.pidFile})` : ''}`);
    }
    log.info({ pid, signal: o.signal }, 'signal sent');
    return 'ok';
  } catch (err) {
    log.error({ pid, pidFile: o.pidFile, signal: o.signal, error: describe(err) }, 'signal failed');
    return 'failed';
  }
}

function runCommand(o: Required<CommandOptions>, env: NodeJS.ProcessEnv, hard: AbortSignal, log: Logger): Promise<Outcome> {
  const [file, ...args] = o.command as [string, ...string[]];
  const t0 = performance.now();
  return new Promise((resolve) => {
    let stderr = '';
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'], shell: false });
    const terminate = () => {
      child.kill('SIGTERM');
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, o.timeoutMs);
    hard.addEventListener('abort', terminate);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS)));
    let settled = false;
    const finish = (outcome: Outcome, fields: Record<string, unknown>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      hard.removeEventListener('abort', terminate);
      const ms = Math.round(performance.now() - t0);
      if (outcome === 'ok') log.info({ command: file, ms }, 'command done');
      else log.error({ command: file, ms, ...fields, stderr }, 'command failed');
      resolve(outcome);
    };
    child.on('error', (err) => finish('failed', { error: describe(err) }));
    child.on('close', (code, signal) => {
      if (code === 0 && !timedOut) finish('ok', {});
      else finish('failed', { exitCode: code, signal, ...(timedOut ? { timeoutMs: o.timeoutMs } : {}) });
    });
  });
}

// ---- the publish directory ----------------------------------------------------------------------------------

/** Creates the dir if missing, refuses a non-directory, and clears what a crash mid-publish left behind. Returns
 *  the version dir `..data` points to (kept: readers may be using it). Older versions of an earlier run cannot be
 *  told from partial ones, so they go too. */
async function prepareDir(dir: string, log: Logger): Promise<string[]> {
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

// ---- small helpers -------------------------------------------------------------------------------------------

interface SignalTarget {
  pid: number | undefined;
  pidFile: string | undefined;
  signal: NodeJS.Signals;
}

type Target =
  | { kind: 'webhook'; options: Required<WebhookOptions> }
  | { kind: 'signal'; options: SignalTarget }
  | { kind: 'command'; options: Required<CommandOptions> };

function noticeBetween(base: ReadonlyMap<string, ConfigEntry>, snap: Snapshot): Notice {
  const hashes: Record<string, string> = {};
  const changed: string[] = [];
  for (const [name, entry] of snap.configs) {
    hashes[name] = entry.hash;
    if (base.get(name)?.hash !== entry.hash) changed.push(name);
  }
  const removed = [...base.keys()].filter((name) => !snap.configs.has(name));
  return { version: snap.version, changed: changed.sort(), removed: removed.sort(), hashes };
}

function sameConfigs(a: Snapshot, b: Snapshot): boolean {
  if (a.configs.size !== b.configs.size) return false;
  for (const [name, entry] of a.configs) if (b.configs.get(name)?.hash !== entry.hash) return false;
  return true;
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** The URL as it may be logged: no credentials, no query (tokens live there too). */
function safeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function fail(message: string, cause?: unknown): never {
  throw new HotconfError('E_OPTIONS', message, cause === undefined ? {} : { cause });
}

function checkPublish(o: PublishOptions): Required<PublishOptions> {
  if (typeof o.dir !== 'string' || o.dir === '') fail('publish.dir (a directory path) is required');
  const dir = path.resolve(o.dir);
  if (dir === path.parse(dir).root) fail(`publish.dir ${dir}: refusing to publish into the root directory`);
  const format = o.format ?? 'json';
  if (format !== 'json' && format !== 'original') fail("publish.format must be 'json' or 'original'");
  const keepVersions = o.keepVersions ?? 1;
  if (!Number.isInteger(keepVersions) || keepVersions < 0) fail('publish.keepVersions must be an integer >= 0');
  return { dir, format, keepVersions, redactSecrets: o.redactSecrets ?? false };
}

function checkNotify(n: NotifyOptions | undefined): Target[] {
  const targets: Target[] = [];
  const positive = (v: number, what: string) => (Number.isFinite(v) && v > 0 ? v : fail(`notify.${what} must be a number > 0`));
  const nonNegative = (v: number, what: string) => (Number.isFinite(v) && v >= 0 ? v : fail(`notify.${what} must be a number >= 0`));
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
    if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) fail('notify.signal.pid must be an integer > 0');
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
