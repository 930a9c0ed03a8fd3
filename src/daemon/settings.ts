// The daemon's own settings: built-in defaults < hotconf.yaml < HOTCONF_* environment < command-line flags.
// hotconf.yaml is read and validated with the same machinery hotconf offers its users (load + a JSON Schema,
// schemas/hotconf.schema.json), and so is the merged result, so a bad environment variable is caught too.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, HotconfError } from '../errors.js';
import { validateOnce } from '../check.js';
import { HOT_OPTIONS, OPTION_DEFAULTS, type HotconfOptions, type HotOptionKey, type OptionKey, type RuntimeOptions } from '../options.js';
import type { NotifyOptions, PublishOptions } from '../publish/index.js';
import type { ValidateSettings } from './appcheck.js';

/** Where the daemon reads its configs from when they live in etcd (instead of `configDir`). */
export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  username?: string;
  /** File holding the password (or $HOTCONF_ETCD_PASSWORD). Never a flag: argv is visible to every user. */
  passwordFile?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** This instance's id in the fleet (default: the pod name under Kubernetes, else the host name). */
  instanceId?: string;
  /** Where the applied release is kept, to start from while etcd is down (default: none). */
  cacheDir?: string;
}

/** The library options that are also settings of hotconf.yaml; their defaults and hotness are the library's
 *  (src/options.ts). The other options of the table are for library users only. */
export const LIBRARY_SETTINGS = [
  'requireSchema',
  'usePolling',
  'startWithValid',
  'batchPolicy',
  'debounceMs',
  'maxBatchDelayMs',
  'verifyIntervalMs',
  'maxFileBytes',
  'keepOnDelete',
  'useDefaults',
  'schemaStrict',
  'unknownFormats',
  'maxSchemaBytes',
  'maxErrorsPerConfig',
  'followExternalLinks',
] as const satisfies readonly OptionKey[];
type LibrarySetting = (typeof LIBRARY_SETTINGS)[number];

export interface DaemonSettings extends Required<Pick<HotconfOptions, LibrarySetting>> {
  /** Directory of configs; absent when they come from etcd. */
  configDir?: string;
  /** The etcd source; exclusive with an explicit `configDir`. */
  etcd?: EtcdSettings;
  schemaDir: string;
  log: { level: string; pretty?: boolean };
  watchdog: { stallMs: number };
  /** The sidecar HTTP API; off when absent. */
  http?: {
    listen?: string;
    allowAllInterfaces?: boolean;
    tokenFile?: string;
    allowSecrets?: boolean;
    allowedHosts?: string[];
    maxConnections?: number;
    maxLongPolls?: number;
    maxClients?: number;
  };
  /** Publish every version into a directory; off when absent. */
  publish?: PublishOptions;
  /** Notify the application after each commit. */
  notify?: NotifyOptions;
  /** The application's own check of each candidate version before commit (daemon/appcheck.ts); off when absent. */
  validate?: ValidateSettings;
}

/** Deep-partial settings as they come from one layer (file, environment, flags). */
export type SettingsLayer = Partial<Omit<DaemonSettings, 'log' | 'watchdog' | 'etcd'>> & {
  etcd?: Partial<EtcdSettings>;
  log?: Partial<DaemonSettings['log']>;
  watchdog?: Partial<DaemonSettings['watchdog']>;
};

/** The package's own directory (works from src/ under vitest and from dist/ when installed). */
export const PACKAGE_ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

export const DEFAULTS: DaemonSettings = {
  configDir: path.join(PACKAGE_ROOT, 'config'),
  schemaDir: path.join(PACKAGE_ROOT, 'schemas'),
  ...pick(OPTION_DEFAULTS, LIBRARY_SETTINGS),
  log: { level: 'info' },
  watchdog: { stallMs: 30_000 },
};

/** The library settings that hot.update() applies while running. */
const HOT_LIBRARY_SETTINGS = HOT_OPTIONS.filter((k): k is HotOptionKey & LibrarySetting => (LIBRARY_SETTINGS as readonly string[]).includes(k));

/** Settings that apply while running. Any other difference needs a restart. */
export const HOT_SETTINGS: readonly string[] = [
  ...HOT_LIBRARY_SETTINGS,
  'log.level',
  'watchdog.stallMs',
  'notify.webhook',
  'notify.signal',
  'notify.command',
  'notify.startupGraceMs',
];

/** What hot.update() takes from the daemon's settings: every hot library setting. */
export function runtimeOptionsOf(settings: DaemonSettings): RuntimeOptions {
  return pick(settings, HOT_LIBRARY_SETTINGS);
}

/** HOTCONF_* variables and the setting each one sets. */
export const ENVIRONMENT: Readonly<Record<string, { key: string; type: 'string' | 'integer' | 'boolean' | 'list' }>> = {
  HOTCONF_CONFIG_DIR: { key: 'configDir', type: 'string' },
  HOTCONF_SCHEMA_DIR: { key: 'schemaDir', type: 'string' },
  HOTCONF_REQUIRE_SCHEMA: { key: 'requireSchema', type: 'boolean' },
  HOTCONF_BATCH_POLICY: { key: 'batchPolicy', type: 'string' },
  HOTCONF_DEBOUNCE_MS: { key: 'debounceMs', type: 'integer' },
  HOTCONF_VERIFY_INTERVAL_MS: { key: 'verifyIntervalMs', type: 'integer' },
  HOTCONF_MAX_FILE_BYTES: { key: 'maxFileBytes', type: 'integer' },
  HOTCONF_LOG_LEVEL: { key: 'log.level', type: 'string' },
  HOTCONF_HTTP: { key: 'http.listen', type: 'string' },
  HOTCONF_PUBLISH_DIR: { key: 'publish.dir', type: 'string' },
  HOTCONF_NOTIFY_WEBHOOK: { key: 'notify.webhook.url', type: 'string' },
  HOTCONF_ETCD: { key: 'etcd.endpoints', type: 'list' },
  HOTCONF_ETCD_PREFIX: { key: 'etcd.prefix', type: 'string' },
  HOTCONF_ETCD_USERNAME: { key: 'etcd.username', type: 'string' },
  HOTCONF_ETCD_PASSWORD_FILE: { key: 'etcd.passwordFile', type: 'string' },
  HOTCONF_ETCD_CA: { key: 'etcd.tls.ca', type: 'string' },
  HOTCONF_ETCD_CERT: { key: 'etcd.tls.cert', type: 'string' },
  HOTCONF_ETCD_KEY: { key: 'etcd.tls.key', type: 'string' },
  HOTCONF_INSTANCE_ID: { key: 'etcd.instanceId', type: 'string' },
  HOTCONF_CACHE_DIR: { key: 'etcd.cacheDir', type: 'string' },
};

/** The daemon's settings are invalid: every problem, each with its file (or variable), line and column. */
export class SettingsError extends HotconfError {
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super('E_OPTIONS', `invalid hotconf settings:\n${errors.map((e) => `  ${e.message}`).join('\n')}`);
    this.errors = errors;
  }
}

/** The schema of hotconf.yaml, shipped with the package. */
export const SETTINGS_SCHEMA = path.join(PACKAGE_ROOT, 'schemas', 'hotconf.schema.json');

/** Reads and validates hotconf.yaml. Relative paths in it are resolved against its directory. */
export async function readSettingsFile(file: string): Promise<SettingsLayer> {
  const result = await validateOnce(file, SETTINGS_SCHEMA);
  if (!result.ok) throw new SettingsError(result.errors);
  const layer = structuredClone(result.value ?? {}) as SettingsLayer;
  return resolvePaths(layer, path.dirname(path.resolve(file)));
}

/** Makes the paths of a layer absolute, relative to `dir`. */
export function resolvePaths(layer: SettingsLayer, dir: string): SettingsLayer {
  const abs = (p: string) => path.resolve(dir, p);
  if (layer.configDir !== undefined) layer.configDir = abs(layer.configDir);
  if (layer.schemaDir !== undefined) layer.schemaDir = abs(layer.schemaDir);
  if (layer.publish?.dir !== undefined) layer.publish.dir = abs(layer.publish.dir);
  if (layer.http?.tokenFile !== undefined) layer.http.tokenFile = abs(layer.http.tokenFile);
  if (layer.http?.listen?.startsWith('unix:')) layer.http.listen = `unix:${abs(layer.http.listen.slice(5))}`;
  if (layer.notify?.signal?.pidFile !== undefined) layer.notify.signal.pidFile = abs(layer.notify.signal.pidFile);
  if (layer.etcd?.passwordFile !== undefined) layer.etcd.passwordFile = abs(layer.etcd.passwordFile);
  if (layer.etcd?.cacheDir !== undefined) layer.etcd.cacheDir = abs(layer.etcd.cacheDir);
  const tls = layer.etcd?.tls;
  if (tls) for (const k of ['ca', 'cert', 'key'] as const) if (tls[k] !== undefined) tls[k] = abs(tls[k]);
  return layer;
}

/** The HOTCONF_* variables as a settings layer; values are checked with the merged result. */
export function environmentLayer(env: NodeJS.ProcessEnv): { layer: SettingsLayer; problems: ConfigError[] } {
  const layer: Record<string, unknown> = {};
  const problems: ConfigError[] = [];
  for (const [name, { key, type }] of Object.entries(ENVIRONMENT)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (type === 'integer') value = /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (type === 'list') value = raw.split(',').map((v) => v.trim()).filter((v) => v !== '');
    if (type === 'boolean') value = raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
    if ((type === 'integer' || type === 'boolean') && typeof value === 'string') {
      problems.push(new ConfigError('E_OPTIONS', { file: `$${name}` }, `must be ${type === 'integer' ? 'a whole number' : 'true or false'}`));
      continue;
    }
    setPath(layer, key, value);
  }
  return { layer: resolvePaths(layer, process.cwd()), problems };
}

/**
 * Merges layers (later wins) over the defaults and validates the result against the same schema. With `etcd`
 * set, the default `configDir` is dropped, and an explicit one is an error (the configs come from one place);
 * `hotconf push` keeps both (`keepConfigDir`): it reads a directory and writes etcd.
 */
export async function resolveSettings(...layers: SettingsLayer[]): Promise<DaemonSettings> {
  return resolveSettingsWith({ keepConfigDir: false }, ...layers);
}

export async function resolveSettingsWith(options: { keepConfigDir: boolean }, ...layers: SettingsLayer[]): Promise<DaemonSettings> {
  const merged = structuredClone(DEFAULTS);
  let explicitConfigDir = false;
  for (const layer of layers) {
    const { log, watchdog, http, publish, notify, etcd, ...flat } = layer;
    if (flat.configDir !== undefined) explicitConfigDir = true;
    if (etcd) {
      const tls = etcd.tls ? { ...merged.etcd?.tls, ...stripUndefined(etcd.tls) } : merged.etcd?.tls;
      merged.etcd = { ...merged.etcd, ...stripUndefined(etcd), ...(tls ? { tls } : {}) } as EtcdSettings;
    }
    Object.assign(merged, stripUndefined(flat));
    if (log) Object.assign(merged.log, stripUndefined(log));
    if (watchdog) Object.assign(merged.watchdog, stripUndefined(watchdog));
    if (http) merged.http = { ...merged.http, ...stripUndefined(http) };
    if (publish) merged.publish = { ...merged.publish, ...stripUndefined(publish) } as NonNullable<DaemonSettings['publish']>;
    if (notify) merged.notify = { ...merged.notify, ...stripUndefined(notify) };
  }
  // cacheDir and instanceId alone (HOTCONF_CACHE_DIR in a unit that serves a directory) do not make an etcd source.
  if (merged.etcd && Object.keys(merged.etcd).every((k) => k === 'cacheDir' || k === 'instanceId')) delete merged.etcd;
  if (merged.etcd && !options.keepConfigDir) {
    if (explicitConfigDir) {
      throw new SettingsError([
        new ConfigError('E_OPTIONS', { file: 'settings' }, 'configDir and etcd are mutually exclusive: configs come from a directory or from etcd (drop one of --config-dir / --etcd, configDir: / etcd:, HOTCONF_CONFIG_DIR / HOTCONF_ETCD)'),
      ]);
    }
    delete merged.configDir;
  }
  const result = await validateOnce('settings (flags, environment and file merged)', SETTINGS_SCHEMA, { value: merged });
  if (!result.ok) throw new SettingsError(result.errors);
  return merged;
}

/** Which settings differ, split into the ones that apply while running and the ones that need a restart. */
export function diffSettings(a: DaemonSettings, b: DaemonSettings): { hot: string[]; restart: string[] } {
  const hot: string[] = [];
  const restart: string[] = [];
  const keys = new Set([...flatKeys(a), ...flatKeys(b)]);
  for (const key of keys) {
    if (JSON.stringify(getPath(a, key)) === JSON.stringify(getPath(b, key))) continue;
    (HOT_SETTINGS.includes(key) ? hot : restart).push(key);
  }
  return { hot: hot.sort(), restart: restart.sort() };
}

function flatKeys(s: DaemonSettings): string[] {
  return Object.entries(s as unknown as Record<string, unknown>).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null ? Object.keys(v).map((sub) => `${k}.${sub}`) : [k],
  );
}

function getPath(obj: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = obj;
  for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
