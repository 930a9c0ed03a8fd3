// The one options table of createHotconf (fastify's defaultInitOptions, pino's defaultOptions): for every
// scalar option its default, unit, whether hot.update() may change it while running, and what a valid value
// is. The defaults, the hot list, RuntimeOptions, the checks and their messages, and the daemon's settings
// are derived from it; nothing else states them.
import type { Logger } from 'pino';
import { HotconfError } from './errors.js';
import { checkEtcdOptions, type EtcdOptions } from './source/etcd/client.js';
import type { AppCheck } from './pipeline/appcheck.js';
import type { Source } from './source/index.js';

/** What one bad file does to its batch (DESIGN.md point 3). */
export const BATCH_POLICIES = ['all-or-nothing', 'per-file'] as const;
export type BatchPolicy = (typeof BATCH_POLICIES)[number];

/** What an unknown `format` does (validate/'s UnknownFormats). */
export const UNKNOWN_FORMATS = ['ignore', 'refuse'] as const;

export interface HotconfOptions {
  /** Directory of config files (`.yaml`, `.yml`, `.json`), watched recursively. Exactly one of `configDir` and `etcd`. */
  configDir?: string;
  /** Read the configs from the keys under an etcd prefix instead of a directory (`<prefix>app.yaml` is `app`).
   *  Exactly one of `configDir` and `etcd`. Schemas still come from `schemaDir`, read at start and on reload(). */
  etcd?: EtcdOptions;
  /** Any other source of configs: opens a {@link Source} (ARCHITECTURE.md says how to write one). Exclusive with
   *  `configDir` and `etcd`. Schemas come from `schemaDir`, read at start and on reload(). */
  source?: (context: { readonly logger: Logger }) => Promise<Source>;
  /** Directory of `<name>.schema.json` files. Required unless `requireSchema` is false. */
  schemaDir?: string;
  /** A config without a schema is an error (true) or accepted unvalidated (false). Default true. */
  requireSchema?: boolean;
  /** `all-or-nothing`: one bad file holds back its whole batch. `per-file`: valid files apply. Default `all-or-nothing`. */
  batchPolicy?: BatchPolicy;
  /** Quiet time after the last event before a batch is processed, in ms. Default 25. */
  debounceMs?: number;
  /** Ceiling on how long a storm of events can hold a batch back, in ms. Default 1000. */
  maxBatchDelayMs?: number;
  /** Period of the stat sweep that catches events the watcher dropped, in ms; 0 disables. Default 1000. */
  verifyIntervalMs?: number;
  /** Largest config file accepted, in bytes. Default 1 MiB. */
  maxFileBytes?: number;
  /** Deepest nesting accepted in a config document. Default 64. */
  maxDepth?: number;
  /** Most YAML alias dereferences per document. Default 100. */
  maxAliasCount?: number;
  /** Files larger than this (bytes) are parsed in a worker thread, so that the host's event loop never waits
   *  for a large parse; `Infinity` disables the worker. Default 65,536 (64 KiB). */
  workerThresholdBytes?: number;
  /** Files read at once during a batch. Default 16. */
  concurrency?: number;
  /** Fill schema `default`s into a copy of each valid config (after the verdict, which judges what was written).
   *  The filled value is what the snapshot, HTTP and published files hold. Default false. */
  useDefaults?: boolean;
  /** Compile schemas in ajv's strict mode (a lint for schema authors): its findings refuse the schema. Default false. */
  schemaStrict?: boolean;
  /** An unknown `format` in a schema: `ignore` it (an annotation, logged once) or `refuse` the schema. Default `ignore`. */
  unknownFormats?: 'ignore' | 'refuse';
  /** Largest schema file accepted, in bytes. Default 16 MiB (generated schemas exceed 1 MiB). */
  maxSchemaBytes?: number;
  /** Formats of your own (`format: "semver"`), checked wherever a schema names them: a RegExp (run by the
   *  ECMAScript engine) or a function of the string. ajv-formats' formats are always there. */
  formats?: Readonly<Record<string, RegExp | ((value: string) => boolean)>>;
  /** The application's own check of each candidate version, after validation and before commit (DESIGN.md point 13):
   *  resolve to accept; resolve with a list of problems, or throw, to refuse. A refusal refuses the whole candidate
   *  (its changed configs keep their last good value, with an `E_APP_CHECK` error, and are retried with the next
   *  batch), under either batch policy. Rules that span several configs belong here. Default: none. */
  check?: AppCheck;
  /** Keep each config's source text in the snapshot (`entry.source`: its file name and exact text), and count a
   *  change of comments or layout as a change. Needed by `publish.format: source`; always on with `check`. Default false. */
  keepSource?: boolean;
  /** Keep the last value of a deleted config instead of removing it. Default false. */
  keepOnDelete?: boolean;
  /** Start with the valid configs when some are invalid at start-up, instead of rejecting. Default false. */
  startWithValid?: boolean;
  /** Poll with stat instead of inotify (network file systems). Default false. */
  usePolling?: boolean;
  /** Most errors kept, logged, served and printed per refused config; the rest are counted in one
   *  `E_MORE_ERRORS` entry ("and M more"). Default 20. */
  maxErrorsPerConfig?: number;
  /** Follow symlinks (of files or directories) whose target resolves outside `configDir`. Default false: such a
   *  config is refused (`E_LINK_OUTSIDE`); links that stay inside (the Kubernetes `..data` layout) always work. */
  followExternalLinks?: boolean;
  /** How long close() waits for subscriber handlers in flight, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /** pino logger. Default: pino at level `info` to stderr. */
  logger?: Logger;
  /** Aborting closes the instance. */
  signal?: AbortSignal;
}

/** The options without a default: where configs and schemas come from, and the host's own objects. */
export type PassThroughKey = 'configDir' | 'etcd' | 'source' | 'schemaDir' | 'formats' | 'check' | 'logger' | 'signal';
/** The options of the table: every one with a default. */
export type OptionKey = Exclude<keyof HotconfOptions, PassThroughKey>;

/** `count` is a plain number of things (levels, aliases, files); `none` is a switch or a choice. */
export type OptionUnit = 'ms' | 'bytes' | 'count' | 'none';

/**
 * What a valid value is. `non-negative`: a finite number >= 0. `non-negative-or-infinity`: the same, or
 * `Infinity` (which switches the feature off). `positive-integer`: an integer >= 1. `{ enum }`: one of those.
 */
export type OptionConstraint = 'boolean' | 'non-negative' | 'non-negative-or-infinity' | 'positive-integer' | { readonly enum: readonly string[] };

export interface OptionSpec<V> {
  readonly default: V;
  readonly unit: OptionUnit;
  /** May change while running, through hot.update() (the daemon re-applies these from its own settings). */
  readonly hot: boolean;
  readonly constraint: [V] extends [boolean]
    ? 'boolean'
    : [V] extends [number]
      ? 'non-negative' | 'non-negative-or-infinity' | 'positive-integer'
      : { readonly enum: readonly V[] };
}

/**
 * The table. Checks run in this order and the first problem is the one reported, so the order is part of
 * the messages users see: the batch policy, the timings, the size limits, then the switches.
 */
export const OPTION_TABLE = {
  batchPolicy: { default: 'all-or-nothing', unit: 'none', hot: true, constraint: { enum: BATCH_POLICIES } },
  debounceMs: { default: 25, unit: 'ms', hot: true, constraint: 'non-negative' },
  maxBatchDelayMs: { default: 1000, unit: 'ms', hot: true, constraint: 'non-negative' },
  verifyIntervalMs: { default: 1000, unit: 'ms', hot: true, constraint: 'non-negative' },
  closeTimeoutMs: { default: 5000, unit: 'ms', hot: false, constraint: 'non-negative' },
  workerThresholdBytes: { default: 65_536, unit: 'bytes', hot: false, constraint: 'non-negative-or-infinity' },
  maxFileBytes: { default: 1_048_576, unit: 'bytes', hot: true, constraint: 'positive-integer' },
  maxSchemaBytes: { default: 16_777_216, unit: 'bytes', hot: false, constraint: 'positive-integer' },
  maxDepth: { default: 64, unit: 'count', hot: false, constraint: 'positive-integer' },
  maxAliasCount: { default: 100, unit: 'count', hot: false, constraint: 'positive-integer' },
  concurrency: { default: 16, unit: 'count', hot: false, constraint: 'positive-integer' },
  maxErrorsPerConfig: { default: 20, unit: 'count', hot: false, constraint: 'positive-integer' },
  requireSchema: { default: true, unit: 'none', hot: false, constraint: 'boolean' },
  useDefaults: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
  schemaStrict: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
  unknownFormats: { default: 'ignore', unit: 'none', hot: false, constraint: { enum: UNKNOWN_FORMATS } },
  keepOnDelete: { default: false, unit: 'none', hot: true, constraint: 'boolean' },
  keepSource: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
  startWithValid: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
  usePolling: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
  followExternalLinks: { default: false, unit: 'none', hot: false, constraint: 'boolean' },
} as const satisfies { readonly [K in OptionKey]: OptionSpec<NonNullable<HotconfOptions[K]>> };

const OPTION_KEYS = Object.keys(OPTION_TABLE) as OptionKey[];
const PASS_THROUGH_KEYS: readonly PassThroughKey[] = ['configDir', 'etcd', 'source', 'schemaDir', 'formats', 'check', 'logger', 'signal'];

/** The options that may change while running. */
export type HotOptionKey = { [K in OptionKey]: (typeof OPTION_TABLE)[K]['hot'] extends true ? K : never }[OptionKey];

/** The options that may change while running (the daemon hot-reloads these from its own config). */
export type RuntimeOptions = Partial<Pick<HotconfOptions, HotOptionKey>>;

/** A value for every option of the table. */
export type OptionValues = Readonly<Required<Pick<HotconfOptions, OptionKey>>>;

/** Every option settled: the caller's value, else the default. The options without a default pass through as given. */
export type ResolvedOptions = OptionValues & Readonly<Pick<HotconfOptions, PassThroughKey>>;

/** The library's defaults. */
export const OPTION_DEFAULTS: OptionValues = Object.freeze(
  Object.fromEntries(OPTION_KEYS.map((k) => [k, OPTION_TABLE[k].default])) as unknown as OptionValues,
);

/** The options hot.update() accepts, in table order. */
export const HOT_OPTIONS: readonly HotOptionKey[] = Object.freeze(OPTION_KEYS.filter((k): k is HotOptionKey => OPTION_TABLE[k].hot));

function fail(msg: string): never {
  throw new HotconfError('E_OPTIONS', `invalid hotconf options: ${msg}`);
}

/** Throws HotconfError('E_OPTIONS') with the first problem of `o`: its source, its schemas, then each value. */
export function checkOptions(o: HotconfOptions): void {
  if (typeof o !== 'object' || o === null) fail('an options object is required');
  if (o.configDir !== undefined && o.etcd !== undefined) fail('`configDir` and `etcd` are mutually exclusive: configs come from a directory or from etcd, not both');
  if (o.source !== undefined) {
    if (typeof o.source !== 'function') fail('`source` must be a function that opens a Source');
    if (o.configDir !== undefined || o.etcd !== undefined) fail('`source` excludes `configDir` and `etcd`: configs come from one source');
  } else if (o.etcd === undefined && (typeof o.configDir !== 'string' || o.configDir === '')) {
    fail('`configDir` (a directory path) or `etcd` is required');
  }
  if (o.etcd !== undefined) {
    try {
      checkEtcdOptions(o.etcd);
    } catch (err) {
      fail((err as Error).message.replace(/^invalid etcd options: /, '`etcd`: '));
    }
  }
  if (o.schemaDir !== undefined && typeof o.schemaDir !== 'string') fail('`schemaDir` must be a directory path');
  if (o.schemaDir === undefined && o.requireSchema !== false) {
    fail('`schemaDir` is required (or set `requireSchema: false` to accept configs without a schema)');
  }
  if (o.check !== undefined && typeof o.check !== 'function') fail('`check` must be a function (candidate) => void | string[] (or a promise of one)');
  if (o.formats !== undefined) {
    if (typeof o.formats !== 'object' || o.formats === null) fail('`formats` must be an object of format name → RegExp or function');
    for (const [name, f] of Object.entries(o.formats)) {
      if (!(f instanceof RegExp) && typeof f !== 'function') fail(`\`formats.${name}\` must be a RegExp or a function (value: string) => boolean`);
    }
  }
  for (const k of OPTION_KEYS) checkValue(k, o[k]);
}

/** The check of hot.update(): the values as checkOptions judges them, and nothing that cannot change while running. */
export function checkRuntimeOptions(o: RuntimeOptions): void {
  if (typeof o !== 'object' || o === null) fail('an options object is required');
  const given = o as Partial<Record<keyof HotconfOptions, unknown>>;
  for (const k of [...OPTION_KEYS, ...PASS_THROUGH_KEYS]) {
    if (given[k] === undefined) continue;
    if (!(HOT_OPTIONS as readonly string[]).includes(k)) fail(`\`${k}\` cannot change while running (restart with the new value)`);
    checkValue(k as HotOptionKey, given[k]);
  }
}

/** Checks `o`, then fills in every default; the result is frozen. Source, schemas, logger and signal pass
 *  through unchanged: they have no default (createHotconf makes the default logger, as it owns its stream). */
export function resolveOptions(o: HotconfOptions): ResolvedOptions {
  checkOptions(o);
  const resolved: Record<string, unknown> = {};
  for (const k of OPTION_KEYS) resolved[k] = o[k] ?? OPTION_TABLE[k].default;
  for (const k of PASS_THROUGH_KEYS) if (o[k] !== undefined) resolved[k] = o[k];
  return Object.freeze(resolved) as unknown as ResolvedOptions;
}

function checkValue(k: OptionKey, v: unknown): void {
  if (v === undefined || isValid(OPTION_TABLE[k].constraint, v)) return;
  fail(`\`${k}\` must be ${expected(k)}`);
}

function isValid(c: OptionConstraint, v: unknown): boolean {
  switch (c) {
    case 'boolean':
      return typeof v === 'boolean';
    case 'non-negative':
      return Number.isFinite(v) && (v as number) >= 0;
    case 'non-negative-or-infinity':
      return typeof v === 'number' && v >= 0;
    case 'positive-integer':
      return Number.isInteger(v) && (v as number) > 0;
    default:
      return c.enum.includes(v as string);
  }
}

/** What a valid value is, as the error message says it: `a number >= 0 (ms)`, `'all-or-nothing' or 'per-file'`. */
function expected(k: OptionKey): string {
  const c: OptionConstraint = OPTION_TABLE[k].constraint;
  const unit: OptionUnit = OPTION_TABLE[k].unit;
  const inUnit = unit === 'ms' || unit === 'bytes' ? ` (${unit})` : '';
  switch (c) {
    case 'boolean':
      return 'true or false';
    case 'non-negative':
      return `a number >= 0${inUnit}`;
    case 'non-negative-or-infinity':
      return `a number >= 0${inUnit} or Infinity`;
    case 'positive-integer':
      return 'a positive integer';
    default: {
      const quoted = c.enum.map((v) => `'${v}'`);
      return quoted.length < 3 ? quoted.join(' or ') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)!}`;
    }
  }
}
