// Validators generated at build time (scripts/build-validators.mjs, run by `npm run build`) with ajv's standalone
// code: the meta-schema of each draft, and the schemas hotconf ships (schemas/hotconf.schema.json, the settings
// file's). Compiling the 2020-12 meta-schema and the settings schema took ~90 ms of every `hotconf check` and
// daemon start; requiring their generated code takes a few. They live in dist/generated/, listed by
// validators.json with the ajv version and the sha-256 of each schema text they were made from: a schema file
// whose text differs, another ajv, or no dist/generated (tsc alone, the sources under vitest) and everything is
// compiled at run time as before.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { linearRegExp, type Dialect, type RegExpLike } from './dialects.js';

const require = createRequire(import.meta.url);
/** From dist/validate/ and src/validate/ alike: the package's dist/generated/. */
const GENERATED = new URL('../../dist/generated/', import.meta.url);

/** Each dialect's meta-schema URI when a schema has no `$schema` of its own. */
export const DEFAULT_META: Record<Dialect, string> = {
  'draft-04': 'http://json-schema.org/draft-04/schema',
  'draft-07': 'http://json-schema.org/draft-07/schema',
  '2019-09': 'https://json-schema.org/draft/2019-09/schema',
  '2020-12': 'https://json-schema.org/draft/2020-12/schema',
};

/** What validators.json says. */
export interface GeneratedIndex {
  ajv: string;
  /** Meta-schema URI (no trailing `#`) → module file. */
  meta: Record<string, string>;
  /** sha-256 of a schema's text → its module, dialect and what ajv warned while compiling it. */
  schemas: Record<string, { file: string; dialect: Dialect; warnings: string[] }>;
}

/** A generated module: a factory taking the function that makes a pattern's matcher. */
type Factory = (regExp: (pattern: string, u: string) => RegExpLike) => ValidateFunction;

export interface Precompiled {
  readonly validate: ValidateFunction;
  readonly warnings: readonly string[];
}

let index: GeneratedIndex | null | undefined;

function generated(): GeneratedIndex | null {
  if (index === undefined) {
    index = null;
    try {
      const read = JSON.parse(readFileSync(new URL('validators.json', GENERATED), 'utf8')) as GeneratedIndex;
      if (read.ajv === (require('ajv/package.json') as { version: string }).version) index = read;
    } catch {
      // not built: compile at run time
    }
  }
  return index;
}

const metas = new Map<string, ValidateFunction | null>();

/** The generated validator of a meta-schema (`$schema` as the dialect's instance spells it), if there is one. */
export function metaValidator(uri: string): ValidateFunction | undefined {
  const key = uri.replace(/#$/, '');
  let v = metas.get(key);
  if (v === undefined) {
    const file = generated()?.meta[key];
    // As the meta instances of index.ts: a pattern the linear-time engine cannot run goes to ECMAScript's.
    v = file ? load(file, (p) => new RegExp(p, 'u')) : null;
    metas.set(key, v);
  }
  return v ?? undefined;
}

/** The generated plain validator of a schema with exactly this text and dialect, if there is one. */
export function precompiledSchema(text: string, dialect: Dialect, onUnsupportedPattern: (pattern: string, reason: string) => RegExpLike): Precompiled | undefined {
  const schemas = generated()?.schemas;
  if (!schemas) return undefined;
  const entry = schemas[createHash('sha256').update(text).digest('hex')];
  if (entry?.dialect !== dialect) return undefined;
  return { validate: load(entry.file, onUnsupportedPattern), warnings: entry.warnings };
}

function load(file: string, onUnsupportedPattern: (pattern: string, reason: string) => RegExpLike): ValidateFunction {
  const factory = require(fileURLToPath(new URL(file, GENERATED))) as Factory;
  return factory((pattern, u) => linearRegExp(pattern, u, { onUnsupportedPattern }));
}
