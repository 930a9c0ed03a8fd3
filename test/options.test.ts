// The options table is the one place that states a default, a unit, whether an option is hot and what a valid
// value is. These tests hold the rest to it: the checks and their messages, resolveOptions, RuntimeOptions, the
// daemon's defaults, and schemas/hotconf.schema.json (so an option added in one place only fails here).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { DEFAULTS, HOT_SETTINGS, LIBRARY_SETTINGS, PACKAGE_ROOT } from '../src/daemon/settings.js';
import { HotconfError } from '../src/errors.js';
import {
  checkOptions,
  checkRuntimeOptions,
  HOT_OPTIONS,
  OPTION_DEFAULTS,
  OPTION_TABLE,
  resolveOptions,
  type HotconfOptions,
  type OptionConstraint,
  type OptionKey,
  type RuntimeOptions,
} from '../src/options.js';

const dirs = { configDir: 'config', schemaDir: 'schemas' } as const;

function messageOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HotconfError);
    expect((err as HotconfError).code).toBe('E_OPTIONS');
    return (err as Error).message;
  }
  return 'accepted';
}

describe('the table', () => {
  test('has an entry for every option of HotconfOptions but the source, the schemas, the formats, the check hook, the logger and the signal', () => {
    expectTypeOf<keyof typeof OPTION_TABLE>().toEqualTypeOf<OptionKey>();
    expectTypeOf<Exclude<keyof HotconfOptions, OptionKey>>().toEqualTypeOf<'configDir' | 'etcd' | 'source' | 'schemaDir' | 'formats' | 'check' | 'logger' | 'signal'>();
  });

  test('RuntimeOptions has exactly the keys of HOT_OPTIONS, and they are the six that may change while running', () => {
    expectTypeOf<keyof RuntimeOptions>().toEqualTypeOf<(typeof HOT_OPTIONS)[number]>();
    // A Record over keyof RuntimeOptions must name every key and no other, so this list is checked by tsc too.
    const runtimeKeys: Record<keyof RuntimeOptions, true> = {
      batchPolicy: true,
      debounceMs: true,
      maxBatchDelayMs: true,
      verifyIntervalMs: true,
      maxFileBytes: true,
      keepOnDelete: true,
    };
    expect([...HOT_OPTIONS].sort()).toEqual(Object.keys(runtimeKeys).sort());
  });

  test('every default passes its own check', () => {
    expect(messageOf(() => checkOptions({ ...dirs, ...OPTION_DEFAULTS }))).toBe('accepted');
  });
});

describe('resolveOptions', () => {
  test('fills every option the caller left out with the library default', () => {
    expect(resolveOptions({ configDir: 'config', requireSchema: false })).toEqual({
      configDir: 'config',
      requireSchema: false,
      batchPolicy: 'all-or-nothing',
      debounceMs: 25,
      maxBatchDelayMs: 1000,
      verifyIntervalMs: 1000,
      closeTimeoutMs: 5000,
      workerThresholdBytes: 65_536,
      maxFileBytes: 1_048_576,
      maxSchemaBytes: 16_777_216,
      maxDepth: 64,
      maxAliasCount: 100,
      concurrency: 16,
      useDefaults: false,
      schemaStrict: false,
      unknownFormats: 'ignore',
      maxErrorsPerConfig: 20,
      keepOnDelete: false,
      keepSource: false,
      startWithValid: false,
      usePolling: false,
      followExternalLinks: false,
    });
  });

  test("keeps the caller's values, passes the source, logger and signal through, drops unknown keys, and is frozen", () => {
    const signal = new AbortController().signal;
    const etcd = { endpoints: ['http://127.0.0.1:2379'], prefix: '/p/' };
    const given = { etcd, schemaDir: 's', debounceMs: 0, workerThresholdBytes: Infinity, keepOnDelete: true, signal, bogus: 1 };
    const resolved = resolveOptions(given);
    expect(resolved).toMatchObject({ etcd, schemaDir: 's', debounceMs: 0, workerThresholdBytes: Infinity, keepOnDelete: true, maxFileBytes: 1_048_576 });
    expect(resolved.signal).toBe(signal);
    expect(resolved).not.toHaveProperty('configDir');
    expect(resolved).not.toHaveProperty('logger');
    expect(resolved).not.toHaveProperty('bogus');
    expect(Object.isFrozen(resolved)).toBe(true);
  });

  test('refuses invalid options instead of defaulting them', () => {
    expect(messageOf(() => resolveOptions({ ...dirs, debounceMs: -1 }))).toBe('invalid hotconf options: `debounceMs` must be a number >= 0 (ms)');
  });
});

describe('checkOptions', () => {
  const bad = (o: unknown) => messageOf(() => checkOptions(o as HotconfOptions));
  const etcd = { endpoints: ['http://127.0.0.1:2379'], prefix: '/p/' };

  test('refuses a missing or doubled source, and a missing schemaDir, with the messages of before', () => {
    const cases: [unknown, string][] = [
      [null, 'an options object is required'],
      ['config', 'an options object is required'],
      [{ configDir: 'x', etcd }, '`configDir` and `etcd` are mutually exclusive: configs come from a directory or from etcd, not both'],
      [{}, '`configDir` (a directory path) or `etcd` is required'],
      [{ configDir: '' }, '`configDir` (a directory path) or `etcd` is required'],
      [{ configDir: 5 }, '`configDir` (a directory path) or `etcd` is required'],
      [{ etcd: null }, '`etcd`: an object is required'],
      [{ etcd: { endpoints: [], prefix: '/p/' } }, '`etcd`: `endpoints` (at least one http:// or https:// URL) is required'],
      [{ etcd: { ...etcd, requestTimeoutMs: 0 }, schemaDir: 's' }, '`etcd`: `requestTimeoutMs` must be a number > 0 (ms)'],
      [{ configDir: 'x', schemaDir: 5 }, '`schemaDir` must be a directory path'],
      [{ configDir: 'x' }, '`schemaDir` is required (or set `requireSchema: false` to accept configs without a schema)'],
      [{ configDir: 'x', requireSchema: true }, '`schemaDir` is required (or set `requireSchema: false` to accept configs without a schema)'],
    ];
    for (const [o, msg] of cases) expect(bad(o), JSON.stringify(o)).toBe(`invalid hotconf options: ${msg}`);
  });

  test('a `source` function is a third way to name the source, exclusive with the other two', () => {
    const source = () => Promise.reject(new Error('never opened'));
    expect(bad({ source, configDir: 'x' })).toBe('invalid hotconf options: `source` excludes `configDir` and `etcd`: configs come from one source');
    expect(bad({ source, etcd })).toBe('invalid hotconf options: `source` excludes `configDir` and `etcd`: configs come from one source');
    expect(bad({ source: 'files' })).toBe('invalid hotconf options: `source` must be a function that opens a Source');
    expect(bad({ source, schemaDir: 's' })).toBe('accepted');
  });

  test('refuses each bad value with the message of before', () => {
    const ms = ['debounceMs', 'maxBatchDelayMs', 'verifyIntervalMs', 'closeTimeoutMs'];
    const positive = ['maxFileBytes', 'maxDepth', 'maxAliasCount', 'concurrency'];
    const cases: [string, unknown[], string][] = [
      ['batchPolicy', ['some', null, ''], "`batchPolicy` must be 'all-or-nothing' or 'per-file'"],
      ...ms.map((k): [string, unknown[], string] => [k, [-1, NaN, Infinity, '5', null], `\`${k}\` must be a number >= 0 (ms)`]),
      ['workerThresholdBytes', [-1, NaN, -Infinity, '5', null], '`workerThresholdBytes` must be a number >= 0 (bytes) or Infinity'],
      ...positive.map((k): [string, unknown[], string] => [k, [0, -1, 1.5, Infinity, '5', null], `\`${k}\` must be a positive integer`]),
    ];
    for (const [key, values, msg] of cases) {
      for (const v of values) expect(bad({ ...dirs, [key]: v }), `${key}: ${String(v)}`).toBe(`invalid hotconf options: ${msg}`);
    }
    // A switch is a boolean: `usePolling: 'false'` would otherwise turn polling on.
    for (const key of ['requireSchema', 'useDefaults', 'keepOnDelete', 'startWithValid', 'usePolling']) {
      for (const v of ['false', 0, 1, null]) expect(bad({ ...dirs, [key]: v }), `${key}: ${String(v)}`).toBe(`invalid hotconf options: \`${key}\` must be true or false`);
    }
    for (const [key, v] of [['debounceMs', 0], ['debounceMs', 2.5], ['workerThresholdBytes', Infinity], ['workerThresholdBytes', 0], ['maxFileBytes', 1]] as const) {
      expect(bad({ ...dirs, [key]: v }), `${key}: ${v}`).toBe('accepted');
    }
  });

  test('reports the first problem in the order of before: source, schemas, policy, timings, limits', () => {
    const first = (o: object) => bad({ ...dirs, ...o });
    expect(bad({ configDir: 'x', schemaDir: 5, batchPolicy: 'x' })).toMatch(/`schemaDir`/);
    expect(first({ maxFileBytes: 0, debounceMs: -1, batchPolicy: 'x' })).toMatch(/`batchPolicy`/);
    expect(first({ maxBatchDelayMs: -1, verifyIntervalMs: -1 })).toMatch(/`maxBatchDelayMs`/);
    expect(first({ maxFileBytes: 0, workerThresholdBytes: -1, closeTimeoutMs: -1 })).toMatch(/`closeTimeoutMs`/);
    expect(first({ maxDepth: 0, workerThresholdBytes: -1 })).toMatch(/`workerThresholdBytes`/);
    expect(first({ concurrency: 0, maxAliasCount: 0, maxDepth: 0 })).toMatch(/`maxDepth`/);
    expect(first({ usePolling: 'yes', concurrency: 0 })).toMatch(/`concurrency`/);
  });
});

describe('checkRuntimeOptions', () => {
  const bad = (o: unknown) => messageOf(() => checkRuntimeOptions(o as RuntimeOptions));

  test('judges hot values as checkOptions does', () => {
    expect(bad({ debounceMs: 10, batchPolicy: 'per-file', keepOnDelete: true })).toBe('accepted');
    expect(bad({})).toBe('accepted');
    expect(bad({ debounceMs: -1 })).toBe('invalid hotconf options: `debounceMs` must be a number >= 0 (ms)');
    expect(bad({ maxFileBytes: 0.5 })).toBe('invalid hotconf options: `maxFileBytes` must be a positive integer');
    expect(bad({ keepOnDelete: 'yes' })).toBe('invalid hotconf options: `keepOnDelete` must be true or false');
    expect(bad(null)).toBe('invalid hotconf options: an options object is required');
  });

  test('refuses an option that cannot change while running, rather than ignoring it', () => {
    expect(bad({ concurrency: 4 })).toBe('invalid hotconf options: `concurrency` cannot change while running (restart with the new value)');
    expect(bad({ configDir: 'elsewhere' })).toMatch(/`configDir` cannot change while running/);
  });
});

type JsonSchema = {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
};
const schema = JSON.parse(await readFile(path.join(PACKAGE_ROOT, 'schemas', 'hotconf.schema.json'), 'utf8')) as JsonSchema;
const properties = schema.properties!;

/** How hotconf.yaml must say a constraint of the table. The daemon may be stricter (`maximum`, integers for ms). */
function inJsonSchema(c: OptionConstraint): { types?: string[]; minimum?: number; enum?: readonly string[] } {
  if (typeof c === 'object') return { enum: c.enum };
  if (c === 'boolean') return { types: ['boolean'] };
  if (c === 'non-negative') return { types: ['integer', 'number'], minimum: 0 };
  if (c === 'positive-integer') return { types: ['integer'], minimum: 1 };
  throw new Error(`${c} has no JSON form (Infinity): a daemon setting needs its own way to say it`);
}

describe('schemas/hotconf.schema.json agrees with the table', () => {
  test('every library option the daemon exposes has the default, type, bound and hotness of the table', () => {
    for (const key of LIBRARY_SETTINGS) {
      const spec = OPTION_TABLE[key];
      const prop = properties[key];
      expect(prop, `${key} is a daemon setting: schemas/hotconf.schema.json needs it`).toBeDefined();
      expect(prop!.default, key).toEqual(spec.default);
      const want = inJsonSchema(spec.constraint);
      if (want.enum) expect(prop!.enum, key).toEqual([...want.enum]);
      if (want.types) expect(want.types, key).toContain(prop!.type);
      expect(prop!.minimum, key).toBe(want.minimum);
      // The description is what editors show: it must say the same default and the same hotness.
      expect(prop!.description, key).toContain(`Default ${String(spec.default)}.`);
      expect(/\bhot\b/.test(prop!.description!), `${key}: hot in the description`).toBe(spec.hot);
    }
  });

  test('every top-level property is a library option the daemon exposes, a source, or a daemon-only setting', () => {
    const sources = ['configDir', 'schemaDir', 'etcd'] as const satisfies readonly (keyof HotconfOptions)[];
    const daemonOnly = ['log', 'watchdog', 'http', 'publish', 'notify', 'validate'];
    for (const key of Object.keys(properties)) {
      if (key in OPTION_TABLE) expect(LIBRARY_SETTINGS as readonly string[], `${key} is in the schema: add it to LIBRARY_SETTINGS`).toContain(key);
      else expect([...sources, ...daemonOnly], `${key} is neither in the options table nor a known daemon-only setting`).toContain(key);
    }
  });

  test("the daemon's defaults are the table's and the schema's; its hot settings include every hot library setting", () => {
    for (const key of LIBRARY_SETTINGS) expect(DEFAULTS[key], key).toBe(OPTION_DEFAULTS[key]);
    expect(DEFAULTS.log.level).toBe(properties.log!.properties!.level!.default);
    expect(DEFAULTS.watchdog.stallMs).toBe(properties.watchdog!.properties!.stallMs!.default);
    expect(HOT_SETTINGS).toEqual(expect.arrayContaining(HOT_OPTIONS.filter((k) => (LIBRARY_SETTINGS as readonly string[]).includes(k))));
    for (const key of LIBRARY_SETTINGS) expect(HOT_SETTINGS.includes(key), key).toBe(OPTION_TABLE[key].hot);
  });
});
