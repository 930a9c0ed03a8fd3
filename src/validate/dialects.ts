// Which ajv runs a schema: one instance per JSON Schema dialect (draft-04; draft-06 and -07; 2019-09; 2020-12),
// chosen by the schema's `$schema`, all with ajv-formats, the user's formats and a linear-time regex engine.
// ajv cannot mix drafts inside one instance (their keywords disagree: `items`, `$ref` siblings, `id`/`$id`),
// so a `$ref` from one draft to another is refused with a message that says so (registry.ts).
import { createRequire } from 'node:module';
import type { Ajv, AnySchemaObject, Options } from 'ajv';
import type { Ajv2019 } from 'ajv/dist/2019.js';
import type { Ajv2020 } from 'ajv/dist/2020.js';
import type { RE2JS } from 're2js';

// ajv and its dialects (~110 CommonJS modules, ~100 ms to load) are required on the first instance of each
// dialect, not when this module loads: `import 'hotconf'` and a process that never compiles a schema skip them.
const require = createRequire(import.meta.url);
const ajvClass = {
  'draft-04': () => (require('ajv-draft-04') as typeof import('ajv-draft-04')).default,
  'draft-07': () => (require('ajv') as typeof import('ajv')).Ajv,
  '2019-09': () => (require('ajv/dist/2019.js') as typeof import('ajv/dist/2019.js')).Ajv2019,
  '2020-12': () => (require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js')).Ajv2020,
};
const addFormats = (ajv: AnyAjv): void => void (require('ajv-formats') as typeof import('ajv-formats')).default(ajv);
/** re2js (one 260 kB module), required on the first pattern. */
export const re2 = (): typeof RE2JS => (require('re2js') as typeof import('re2js')).RE2JS;
const draft06Meta = (): AnySchemaObject => require('ajv/dist/refs/json-schema-draft-06.json') as AnySchemaObject;

export type Dialect = 'draft-04' | 'draft-07' | '2019-09' | '2020-12';

/** The meta-schema URI each dialect's instance knows, written into a schema's `$schema` before it is added. */
const CANONICAL: Record<string, { dialect: Dialect; uri: string }> = {
  'json-schema.org/draft-04/schema': { dialect: 'draft-04', uri: 'http://json-schema.org/draft-04/schema#' },
  'json-schema.org/draft-06/schema': { dialect: 'draft-07', uri: 'http://json-schema.org/draft-06/schema#' },
  'json-schema.org/draft-07/schema': { dialect: 'draft-07', uri: 'http://json-schema.org/draft-07/schema#' },
  'json-schema.org/draft/2019-09/schema': { dialect: '2019-09', uri: 'https://json-schema.org/draft/2019-09/schema' },
  'json-schema.org/draft/2020-12/schema': { dialect: '2020-12', uri: 'https://json-schema.org/draft/2020-12/schema' },
};

/**
 * The dialect named by `$schema` (http or https, with or without the trailing `#`), and its spelling as the
 * instance knows it. No `$schema`: 2020-12. An unknown `$schema` is a string naming the problem.
 */
export function dialectOf(schema: unknown): { dialect: Dialect; uri: string | undefined } | string {
  if (typeof schema !== 'object' || schema === null || !('$schema' in schema)) return { dialect: '2020-12', uri: undefined };
  const given = (schema).$schema;
  if (typeof given !== 'string') return '`$schema` must be a string';
  const key = given.replace(/^https?:\/\//, '').replace(/#$/, '');
  const known = CANONICAL[key];
  if (!known) {
    return `unknown $schema ${JSON.stringify(given)}: hotconf knows draft-04, draft-06, draft-07, 2019-09 and 2020-12 (https://json-schema.org/draft/2020-12/schema when there is no $schema)`;
  }
  return known;
}

export type AnyAjv = Ajv | Ajv2019 | Ajv2020;

/** What every instance shares; `onWarning` hears ajv's warnings (unknown formats, strict-mode findings in log mode). */
export interface DialectOptions {
  strict: boolean;
  useDefaults: boolean;
  /** Collect every error (default), or stop at the first: for documents too large to collect all of (index.ts). */
  allErrors?: boolean;
  formats: Readonly<Record<string, RegExp | ((value: string) => boolean)>>;
  onWarning: (message: string) => void;
  /** A pattern the linear-time engine cannot run: returns the engine to use, or throws to refuse the schema. */
  onUnsupportedPattern: (pattern: string, reason: string) => RegExpLike;
  /** Build time only (scripts/build-validators.mjs): keep each validator's source for ajv's standalone code, where
   *  a pattern is made by calling `regExpCode` (an expression the generated module provides). */
  source?: { regExpCode: string };
}

export interface RegExpLike {
  test(s: string): boolean;
}

/** A new ajv instance for `dialect`. */
export function createAjv(dialect: Dialect, o: DialectOptions): AnyAjv {
  const regExp = Object.assign((pattern: string, u: string) => linearRegExp(pattern, u, o), { code: o.source?.regExpCode ?? 're2js' });
  const options: Options = {
    allErrors: o.allErrors ?? true,
    // Spec semantics unless strict is asked for: ajv's strict mode is a linter for schema authors. What it would
    // have said is still heard (log mode) for the debug log, except unknown keywords, which the spec ignores.
    ...(o.strict ? { strict: true } : { strict: false, strictTypes: 'log', strictTuples: 'log', strictRequired: 'log' }),
    // ajv ties this one to strict mode, but it is about data: YAML's .inf and .nan (and JSON's 1e400) are no number.
    strictNumbers: true,
    useDefaults: o.useDefaults,
    code: { regExp, ...(o.source ? { source: true } : {}) },
    logger: { log: () => undefined, warn: (...a: unknown[]) => o.onWarning(a.map(String).join(' ')), error: () => undefined },
  };
  const ajv: AnyAjv = new (ajvClass[dialect]())(options);
  if (dialect === 'draft-07') ajv.addMetaSchema(draft06Meta());
  addFormats(ajv);
  for (const [name, format] of Object.entries(o.formats)) ajv.addFormat(name, format);
  return ajv;
}

/**
 * ECMAScript patterns run by re2js, whose time is linear in the input: `^(a+)+$` cannot freeze the process.
 * RE2 has no lookaround and no backreferences; such a pattern goes to `onUnsupportedPattern`. `\uXXXX` and
 * `\u{X}` escapes are rewritten to RE2's `\x{X}`.
 */
export function linearRegExp(pattern: string, u: string, o: Pick<DialectOptions, 'onUnsupportedPattern'>): RegExpLike {
  let compiled: ReturnType<typeof RE2JS.compile>;
  try {
    compiled = re2().compile(toRe2(pattern));
  } catch (err) {
    // Not even ECMAScript: the schema is invalid whatever the engine.
    new RegExp(pattern, u);
    return o.onUnsupportedPattern(pattern, (err as Error).message.replace(/^error parsing regexp: /, ''));
  }
  return { test: (s: string) => compiled.matcher(s).find(), toString: () => `re2:${pattern}` } as RegExpLike;
}

function toRe2(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c !== '\\' || i + 1 >= pattern.length) {
      out += c;
      continue;
    }
    const next = pattern[i + 1]!;
    const hex4 = /^u([0-9a-fA-F]{4})/.exec(pattern.slice(i + 1, i + 6));
    const braced = /^u\{([0-9a-fA-F]+)\}/.exec(pattern.slice(i + 1, i + 12));
    if (hex4) {
      out += `\\x{${hex4[1]}}`;
      i += 5;
    } else if (braced) {
      out += `\\x{${braced[1]}}`;
      i += braced[0].length;
    } else {
      out += c + next;
      i++;
    }
  }
  return out;
}
