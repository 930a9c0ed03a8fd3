// `hotconf run`: the library as a long-running service. It owns what a process owns and a library must not:
// its settings (hotconf.yaml + HOTCONF_* + flags, the hot ones re-applied while running), stdout logging,
// signals (SIGHUP reload, SIGTERM/SIGINT graceful stop, a second one forces), and systemd's notify protocol
// with a watchdog that only pings while a probe batch still makes it through the pipeline.
import { unwatchFile, watchFile } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { settleWithin } from '../async.js';
import { ConfigError, InitialLoadError } from '../errors.js';
import { readFile } from 'node:fs/promises';
import type { EtcdOptions } from '../source/etcd/client.js';
import { createHotconf, type Hotconf, type HotconfOptions } from '../hotconf.js';
import type { HttpServer } from '../http/index.js';
import type { HotconfMetrics } from '../metrics/index.js';
import { isInside } from '../names.js';
import type { Publisher } from '../publish/index.js';
import { daemonLogger } from './log.js';
import { SystemdNotifier } from './notify.js';
import { commandCheck } from './appcheck.js';
import { monotonicUs, runtimeDirOf, writeReloadOutcome, type ReloadOutcome } from './reload.js';
import {
  diffSettings,
  environmentLayer,
  readSettingsFile,
  resolveSettingsWith,
  runtimeOptionsOf,
  SettingsError,
  type DaemonSettings,
  type EtcdSettings,
  type SettingsLayer,
} from './settings.js';

export { daemonLogger } from './log.js';
export { commandCheck } from './appcheck.js';
export { redactSourceText } from '../check.js';
export { SettingsError } from './settings.js';
/** For the CLI, which shows names and messages but may not import names.ts itself. */
export { escapeControl } from '../names.js';
export type { DaemonSettings, SettingsLayer } from './settings.js';

const require = createRequire(import.meta.url);
/** pino at level silent, loaded only when asked for (`hotconf check` makes no logger). */
const silentLogger = (): Logger => (require('pino') as typeof import('pino')).pino({ level: 'silent' });

/** Exit codes of every hotconf command (documented in the README). */
export const EXIT = {
  OK: 0,
  /** A config is invalid (check), or the initial config is invalid (run). */
  INVALID: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** Cannot run: the daemon's own settings are invalid, a directory is missing, an internal error. */
  CANNOT_RUN: 3,
} as const;

export interface DaemonOptions {
  /** hotconf.yaml; undefined runs on defaults, environment and flags alone. */
  settingsFile?: string | undefined;
  /** Settings from command-line flags (highest precedence). */
  flags?: SettingsLayer;
  /** Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How often hotconf.yaml is checked for changes, in ms. Default 1000. */
  settingsPollMs?: number;
}

/** Loads the three layers of settings; throws SettingsError listing every problem. `keepConfigDir`: keep the
 *  config directory beside etcd (`hotconf push` reads the one and writes the other). */
export async function loadSettings(options: DaemonOptions, { keepConfigDir = false } = {}): Promise<DaemonSettings> {
  const env = environmentLayer(options.env ?? process.env);
  if (env.problems.length > 0) throw new SettingsError(env.problems);
  const file = options.settingsFile === undefined ? {} : await readSettingsFile(options.settingsFile);
  return resolveSettingsWith({ keepConfigDir }, file, env.layer, options.flags ?? {});
}

/** The library's etcd options from the daemon's: the password from $HOTCONF_ETCD_PASSWORD, else `passwordFile`. */
export async function etcdOptionsOf(etcd: EtcdSettings, env: NodeJS.ProcessEnv = process.env): Promise<EtcdOptions> {
  let password = env.HOTCONF_ETCD_PASSWORD;
  if (password === undefined && etcd.passwordFile !== undefined) {
    try {
      password = (await readFile(etcd.passwordFile, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new SettingsError([new ConfigError('E_OPTIONS', { file: etcd.passwordFile }, `cannot read the etcd password file: ${(err as Error).message}`)]);
    }
  }
  return {
    endpoints: etcd.endpoints,
    prefix: etcd.prefix,
    ...(etcd.username === undefined ? {} : { username: etcd.username }),
    ...(password === undefined ? {} : { password }),
    ...(etcd.tls === undefined ? {} : { tls: etcd.tls }),
    ...(etcd.instanceId === undefined ? {} : { instanceId: etcd.instanceId }),
    ...(etcd.cacheDir === undefined ? {} : { cacheDir: etcd.cacheDir }),
  };
}

/** createHotconf's options from the daemon's settings (the source: a directory or etcd). */
export async function hotconfOptionsOf(settings: DaemonSettings, env: NodeJS.ProcessEnv = process.env, logger?: Logger): Promise<HotconfOptions> {
  const { etcd, configDir, validate, ...rest } = settings;
  return {
    ...rest,
    ...(etcd ? { etcd: await etcdOptionsOf(etcd, env) } : { configDir: configDir! }),
    // `publish.format: source` publishes the source's own bytes: the snapshot keeps them.
    keepSource: settings.publish?.format === 'source',
    ...(validate ? { check: commandCheck(validate, (logger ?? silentLogger()).child({ module: 'validate.command' }), env) } : {}),
  };
}

/** Runs the daemon until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  // Signals that arrive while starting up are held, not fatal (SIGHUP and SIGINT would otherwise kill the
  // process by default): the daemon acts on them as soon as it runs.
  const early = new EarlySignals();
  try {
    return await startAndRun(options, early);
  } finally {
    early.release();
  }
}

/** Records SIGTERM/SIGINT/SIGHUP until the daemon installs its own handlers. */
class EarlySignals {
  stop: NodeJS.Signals | undefined;
  reload = false;
  private readonly onStop = (signal: NodeJS.Signals) => (this.stop ??= signal);
  private readonly onHup = () => (this.reload = true);
  constructor() {
    process.on('SIGTERM', this.onStop);
    process.on('SIGINT', this.onStop);
    process.on('SIGHUP', this.onHup);
  }
  release(): void {
    process.off('SIGTERM', this.onStop);
    process.off('SIGINT', this.onStop);
    process.off('SIGHUP', this.onHup);
  }
}

async function startAndRun(options: DaemonOptions, early: EarlySignals): Promise<number> {
  let settings: DaemonSettings;
  try {
    settings = await loadSettings(options);
  } catch (err) {
    const logger = daemonLogger({ log: { level: 'info' } });
    reportSettingsError(logger, err);
    return EXIT.CANNOT_RUN;
  }
  const logger = daemonLogger(settings);
  const source = settings.etcd ? { etcd: settings.etcd.endpoints, prefix: settings.etcd.prefix } : { configDir: settings.configDir };
  logger.info({ ...source, schemaDir: settings.schemaDir }, 'hotconf starting'); // pino adds the pid
  const settingsFile = options.settingsFile === undefined ? undefined : path.resolve(options.settingsFile);
  const configDir = settings.configDir === undefined ? undefined : path.resolve(settings.configDir);
  if (settingsFile && configDir && isInside(settingsFile, configDir)) {
    logger.fatal({ settingsFile, configDir: settings.configDir }, 'hotconf.yaml must not be inside configDir (it would be served as a config)');
    return EXIT.CANNOT_RUN;
  }
  const publishDir = settings.publish?.dir === undefined ? undefined : path.resolve(settings.publish.dir);
  if (publishDir && configDir && (publishDir === configDir || isInside(publishDir, configDir) || isInside(configDir, publishDir))) {
    logger.fatal({ publishDir, configDir: settings.configDir }, 'publish.dir and configDir must not contain each other');
    return EXIT.CANNOT_RUN;
  }
  const notifier = new SystemdNotifier({ logger: logger.child({ module: 'sd_notify' }) });

  let hot: Hotconf;
  try {
    hot = await createHotconf({ ...(await hotconfOptionsOf(settings, options.env ?? process.env, logger)), logger });
  } catch (err) {
    if (err instanceof InitialLoadError) {
      // The pipeline has logged the refusal with each problem; this says what it means for the process.
      logger.fatal({ errors: err.errors.length }, 'initial config is invalid; not starting (the previous process, if any, keeps serving)');
      await notifier.status(`initial config invalid: ${err.errors.length} error(s)`);
      return EXIT.INVALID;
    }
    logger.fatal({ err }, 'cannot start');
    return EXIT.CANNOT_RUN;
  }

  // The shells around the library: metrics, the sidecar API, and publish/notify for apps that read files.
  // Metrics cost memory and start-up time, so they exist only when HTTP serves them; the daemon owns them, so
  // that publish/notify outcomes are counted by the daemon, not by the HTTP server.
  let metrics: HotconfMetrics | undefined;
  let server: HttpServer | undefined;
  let publisher: Publisher | undefined;
  /** The publisher now: the daemon's once it runs (a reload may start one). */
  const shells = { publisher: (): Publisher | undefined => publisher };
  try {
    if (settings.http) {
      const token = await readToken(settings, options.env ?? process.env);
      // Loaded only when asked for (fastify, prom-client: ~70 modules, ~10 MB): a daemon without --http never has them.
      const [{ HotconfMetrics }, { startHttpServer }] = await Promise.all([import('../metrics/index.js'), import('../http/index.js')]);
      metrics = new HotconfMetrics(hot);
      server = await startHttpServer(hot, {
        ...(settings.http.listen === undefined ? {} : { listen: settings.http.listen }),
        allowAllInterfaces: settings.http.allowAllInterfaces ?? false,
        allowSecrets: settings.http.allowSecrets ?? false,
        ...pickDefined(settings.http, ['allowedHosts', 'maxConnections', 'maxLongPolls', 'maxClients'] as const),
        ...(token === undefined ? {} : { token }),
        logger,
        metrics,
        // The publisher may come later (a notify target added by a reload): asked on each request.
        status: () => {
          const current = shells.publisher();
          return current === undefined ? {} : { notify: current.status() };
        },
      });
    }
    if (settings.publish || settings.notify) publisher = await (await import('../publish/index.js')).startPublisher(hot, publisherOptions(settings, logger, metrics));
  } catch (err) {
    logger.fatal({ err }, 'cannot start the sidecar');
    await server?.close();
    await publisher?.close();
    metrics?.close();
    await hot.close();
    return EXIT.CANNOT_RUN;
  }

  const daemon = new Daemon(hot, settings, logger, notifier, options, settingsFile, metrics, server, publisher);
  shells.publisher = () => daemon.publisher;
  return daemon.run(early);
}

/** Shortest bearer token accepted, wherever it comes from: 16 characters of base64 are 96 bits. */
export const MIN_TOKEN_CHARS = 16;

/** The bearer token: $HOTCONF_HTTP_TOKEN, else `http.tokenFile`; one rule for both (checkToken). Never logged. */
async function readToken(settings: DaemonSettings, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (env.HOTCONF_HTTP_TOKEN) return checkToken(env.HOTCONF_HTTP_TOKEN.trim(), '$HOTCONF_HTTP_TOKEN');
  const file = settings.http?.tokenFile;
  if (file === undefined) return undefined;
  return checkToken((await readFile(file, 'utf8')).trim(), `the token in ${file}`);
}

/** At least MIN_TOKEN_CHARS visible ASCII characters (no spaces): what a bearer header can carry, hard to guess. */
export function checkToken(token: string, where: string): string {
  if (!/^[\x21-\x7e]*$/.test(token)) throw new Error(`${where} must be visible ASCII characters only (no spaces or control characters)`);
  if (token.length < MIN_TOKEN_CHARS) {
    throw new Error(`${where} is too short (${token.length} characters; at least ${MIN_TOKEN_CHARS}, e.g. head -c 24 /dev/urandom | base64)`);
  }
  return token;
}

/** The keys of `o` that are set (exactOptionalPropertyTypes: an absent option is left out, not undefined). */
function pickDefined<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Partial<Pick<T, K>>;
}

function publisherOptions(settings: DaemonSettings, logger: Logger, metrics: HotconfMetrics | undefined) {
  return {
    ...(settings.publish ? { publish: settings.publish } : {}),
    ...(settings.notify ? { notify: settings.notify } : {}),
    logger,
    onResult: (kind: string, ok: boolean) => metrics?.notifyResults.inc({ kind, result: ok ? 'ok' : 'failed' }),
  };
}

/** A config error's fields for a log line whose message is the error's message (said once, not twice). */
function errorFields(e: ConfigError): Omit<ReturnType<ConfigError['toJSON']>, 'message'> {
  const { message: _message, ...fields } = e.toJSON();
  return fields;
}

function reportSettingsError(logger: Logger, err: unknown): void {
  if (err instanceof SettingsError) {
    for (const e of err.errors) logger.error(errorFields(e), e.message);
    logger.fatal('invalid hotconf settings');
  } else {
    logger.fatal({ err }, 'cannot read hotconf settings');
  }
}

class Daemon {
  private stopping: Promise<number> | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private watchdogTimer: NodeJS.Timeout | undefined;
  /** Where each reload's outcome is recorded for `hotconf reload` (systemd's RuntimeDirectory=). */
  private readonly runtimeDir: string | undefined;
  private readonly handlers: Array<[NodeJS.Signals, () => void]> = [];

  constructor(
    private readonly hot: Hotconf,
    private settings: DaemonSettings,
    private readonly logger: Logger,
    private readonly notifier: SystemdNotifier,
    private readonly options: DaemonOptions,
    private readonly settingsFile: string | undefined,
    private readonly metrics: HotconfMetrics | undefined,
    private readonly server: HttpServer | undefined,
    public publisher: Publisher | undefined,
  ) {
    this.runtimeDir = runtimeDirOf(options.env ?? process.env);
  }

  async run(early: EarlySignals): Promise<number> {
    const { hot, notifier, logger } = this;
    let exit!: (code: number) => void;
    const exited = new Promise<number>((resolve) => (exit = resolve));
    hot.onBatch(() => this.onBatch());
    this.on('SIGHUP', () => this.reload('SIGHUP'));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      this.on(signal, () => {
        if (this.stopping) {
          logger.warn({ signal }, 'second signal: forced exit');
          logger.flush();
          process.exit(EXIT.INVALID);
        }
        this.stopping = this.stop(signal);
        this.stopping.then(exit, (err: unknown) => {
          logger.error({ err }, 'stop failed');
          exit(EXIT.CANNOT_RUN);
        });
      });
    }
    // From here the handlers above hear every signal: the early ones go now (a signal heard by both would be
    // taken for a second one and force the exit), and what they recorded is acted on once the daemon runs.
    early.release();
    const held: NodeJS.Signals | undefined = early.stop ?? (early.reload ? 'SIGHUP' : undefined);
    if (this.settingsFile) {
      watchFile(this.settingsFile, { interval: this.options.settingsPollMs ?? 1000, persistent: false }, (curr, prev) => {
        if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) this.reload('settings file changed');
      });
    }
    // Before READY=1: from then on systemd runs ExecReload=, whose `hotconf reload` looks for this file first.
    await this.recordOutcome({ reason: 'start', startedAt: monotonicUs(), problems: [] });
    await notifier.ready(this.statusText());
    this.startWatchdog();
    logger.info({ version: hot.version, systemd: notifier.enabled, watchdogMs: notifier.watchdogIntervalMs }, 'hotconf running');
    if (held) process.emit(held, held);
    return exited;
  }

  private on(signal: NodeJS.Signals, handler: () => void): void {
    process.on(signal, handler);
    this.handlers.push([signal, handler]);
  }

  private statusText(): string {
    const st = this.hot.status();
    const text = `version ${st.version}, ${st.configs.length} configs, ${st.errors} errors`;
    if (st.sourceRelease === undefined) return text;
    const source = st.source as { stale?: boolean; staleSince?: number | null };
    const stale = source.stale === true && typeof source.staleSince === 'number' ? `stale: serving cached release ${st.sourceRelease} since ${new Date(source.staleSince).toISOString()}; ` : '';
    return `${stale}release ${st.sourceRelease}, ${text}`;
  }

  private onBatch(): void {
    // The pipeline logs the batch itself, as one event (a refusal at error level, with each config's errors capped
    // at maxErrorsPerConfig and each problem's file:line:col).
    this.notifier.status(this.statusText()).catch(() => undefined); // send() never rejects; belt and braces
  }

  /**
   * SIGHUP (or an edit of hotconf.yaml): re-read the settings, rescan every file and schema. Signals that
   * arrive during a reload coalesce into one more reload, so a storm costs at most two.
   */
  private reload(reason: string): void {
    if (this.stopping) return;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        const startedAt = monotonicUs();
        await this.notifier.reloading();
        const problems = await this.reloadSettings();
        const started = performance.now();
        const result = await this.hot.reload().catch((err: unknown) => {
          if (!this.stopping) this.logger.error({ err }, 'reload failed');
          problems.push(`reload failed: ${err instanceof Error ? err.message : String(err)}`);
          return undefined;
        });
        if (result) {
          this.logger.info({ reason, version: result.version, errors: result.errors.length, ms: Math.round(performance.now() - started) }, 'reloaded');
          problems.push(...result.errors.map((e) => e.message));
        }
        await this.notifier.ready(this.statusText());
        // After READY=1, so that systemd is out of its reloading state when `hotconf reload` returns.
        await this.recordOutcome({ reason, startedAt, problems });
      } while (this.reloadAgain && !this.stopping);
    })().finally(() => {
      this.reloading = undefined;
    });
  }

  /**
   * Records the outcome where `hotconf reload` waits for it. It fails when hotconf.yaml was not applied or any
   * config is invalid after the rescan (the last good values stay live either way). A failed write is logged:
   * the reload itself happened, only its report is missing (and `hotconf reload` times out saying so).
   */
  private async recordOutcome({ reason, startedAt, problems }: { reason: string; startedAt: bigint; problems: string[] }): Promise<void> {
    if (this.runtimeDir === undefined) return;
    const outcome: ReloadOutcome = {
      pid: process.pid,
      reason,
      startedAtUs: startedAt.toString(),
      durationMs: Math.round(Number(monotonicUs() - startedAt) / 1000),
      ok: problems.length === 0,
      version: this.hot.version,
      // bounded: a thousand broken files must not make a thousand-line reply
      problems: problems.length > 20 ? [...problems.slice(0, 20), `… and ${problems.length - 20} more`] : problems,
    };
    await writeReloadOutcome(this.runtimeDir, outcome).catch((err: unknown) => this.logger.error({ err, dir: this.runtimeDir }, 'cannot record the reload outcome'));
  }

  /** Applies what may change while running; a change that needs a restart applies nothing and says so.
   *  Resolves with what kept the new settings from applying (empty when they applied or did not change). */
  private async reloadSettings(): Promise<string[]> {
    let next: DaemonSettings;
    try {
      next = await loadSettings(this.options);
    } catch (err) {
      if (err instanceof SettingsError) {
        for (const e of err.errors) this.logger.error(e instanceof ConfigError ? errorFields(e) : {}, e.message);
        this.logger.error('hotconf settings are invalid; keeping the current ones');
        return [...err.errors.map((e) => e.message), 'hotconf settings are invalid; keeping the current ones'];
      }
      this.logger.error({ err }, 'cannot read hotconf settings; keeping the current ones');
      return [`cannot read hotconf settings; keeping the current ones: ${err instanceof Error ? err.message : String(err)}`];
    }
    const { hot, restart } = diffSettings(this.settings, next);
    if (restart.length > 0) {
      this.logger.warn({ restart, hot }, 'settings change needs a restart; nothing of it was applied');
      return [`settings change needs a restart; nothing of it was applied: ${restart.join(', ')}`];
    }
    if (hot.length === 0) return [];
    if (hot.some((key) => key.startsWith('notify.'))) {
      try {
        if (this.publisher) this.publisher.setNotify(next.notify);
        else this.publisher = await (await import('../publish/index.js')).startPublisher(this.hot, publisherOptions(next, this.logger, this.metrics));
      } catch (err) {
        this.logger.error({ err }, 'new notify settings refused; keeping the current ones');
        return [`new notify settings refused; keeping the current ones: ${err instanceof Error ? err.message : String(err)}`];
      }
    }
    this.logger.level = next.log.level;
    this.hot.update(runtimeOptionsOf(next));
    this.settings = next;
    this.logger.info({ changed: hot }, 'settings applied');
    return [];
  }

  /**
   * WATCHDOG=1 at half of WATCHDOG_USEC, but only after a probe batch went through the pipeline within one
   * interval and no batch is stuck past `watchdog.stallMs`: a wedged pipeline (a hung read, a blocked event
   * loop) stops the pings, and systemd restarts the service.
   */
  private startWatchdog(): void {
    const interval = this.notifier.watchdogIntervalMs;
    if (interval === undefined) return;
    let probing = false;
    const tick = async () => {
      if (probing || this.stopping) return;
      probing = true;
      try {
        const ping = this.hot.ping();
        const alive = await settleWithin(ping, interval);
        if (alive) await ping; // a probe that failed fails the tick, and is logged as such
        const health = this.hot.health(this.settings.watchdog.stallMs);
        if (alive && health.healthy) await this.notifier.watchdog();
        else this.logger.warn({ alive, batchInFlightMs: health.batchInFlightMs }, 'pipeline wedged: withholding the watchdog ping');
      } finally {
        probing = false;
      }
    };
    this.watchdogTimer = setInterval(() => void tick().catch((err: unknown) => this.logger.error({ err }, 'watchdog tick failed')), interval);
    void tick().catch((err: unknown) => this.logger.error({ err }, 'watchdog tick failed'));
  }

  private async stop(signal: string): Promise<number> {
    this.logger.info({ signal }, 'stopping: finishing the batch in flight');
    await this.notifier.stopping(`stopping on ${signal}`);
    clearInterval(this.watchdogTimer);
    if (this.settingsFile) unwatchFile(this.settingsFile);
    await this.server?.close(); // no new requests; SSE streams and long-polls end
    await this.hot.close(); // finishes the batch in flight and waits (bounded) for its subscribers
    await this.reloading;
    await this.publisher?.close(); // the last committed version is published and notified first
    this.metrics?.close(); // after the publisher, which counts into it until it is closed
    this.logger.info({ version: this.hot.version }, 'stopped');
    this.logger.flush();
    this.notifier[Symbol.dispose]();
    for (const [sig, handler] of this.handlers) process.off(sig, handler);
    return EXIT.OK;
  }
}
