// The third stage: a parsed document meets its JSON Schema. Schemas are found by config name
// (`schemas/db/primary.schema.json` for `db/primary`); every schema of the directory is added to its draft's
// ajv instance first and compiled after, so any file can `$ref` any other by `$id` or relative path. A change
// to any schema file rebuilds the instances (a fixed schema is never shadowed by its broken predecessor).
// Every ajv error is mapped back to `file:line:col` of the offending node plus its JSON pointer; secrets are
// found from the schema's structure (secrets.ts).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AnySchemaObject, ErrorObject, ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import { mapLimit } from '../async.js';
import { moreErrorsDetail, ReadError, SchemaError } from '../errors.js';
import { parseConfig, readStable, type FileIdentity, type ParsedConfig, type Position } from '../load/index.js';
import { isInside, SCHEMA_SUFFIX, schemaNameOf, toPosix } from '../names.js';
import { escapePointer, parsePointer } from '../pointer.js';
import { createAjv, dialectOf, type AnyAjv, type Dialect, type DialectOptions, type RegExpLike } from './dialects.js';
import { DEFAULT_META, metaValidator, precompiledSchema, type Precompiled } from './precompiled.js';
import { findSecrets, mentionsSecret, resolveUri, SECRET_KEYWORD } from './secrets.js';

/** Suffix of schema files in the schema directory (the naming rule's, names.ts). */
export { SCHEMA_SUFFIX, SECRET_KEYWORD };

/**
 * Added by hotconf to every subschema that allows integers, in a second pass run only when the data holds an
 * integer beyond ±(2^53 − 1): such a number has already lost digits when it was parsed
 * (`123456789012345678901234567890` reads as 1.2345678901234568e+29), so accepting it where the schema takes
 * an integer would apply a value that is not the one written. The pass can only refuse what ajv accepted.
 */
const SAFE_INTEGER_KEYWORD = 'x-hotconf-safe-integer';
const SAFE_INTEGER_DETAIL = 'must be an integer from -(2^53 - 1) to 2^53 - 1 (a larger one has lost digits in parsing)';

/** What `unknownFormats` may say: an unknown `format` is an annotation (ignored), or refuses its schema. */
export const UNKNOWN_FORMATS = ['ignore', 'refuse'] as const;
export type UnknownFormats = (typeof UNKNOWN_FORMATS)[number];

export interface SchemaRegistryOptions {
  /** Directory holding `<name>.schema.json` files. Required. */
  schemaDir: string;
  /** Fill in `default` values from the schema into a copy of a valid document. Default false. */
  useDefaults?: boolean;
  /** Compile with ajv's strict mode (a lint for schema authors): its findings refuse the schema. Default false. */
  schemaStrict?: boolean;
  /** An unknown `format`: `ignore` (an annotation, logged once) or `refuse` the schema. Default `ignore`. */
  unknownFormats?: UnknownFormats;
  /** Formats of your own, checked wherever a schema names them: a RegExp or a function of the string. */
  formats?: Readonly<Record<string, RegExp | ((value: string) => boolean)>>;
  /** Largest schema file accepted, in bytes. Default 16 MiB. */
  maxSchemaBytes?: number;
  /** Most errors kept per refused document; the rest are counted in one `E_MORE_ERRORS` entry. Default 20. */
  maxErrors?: number;
  /** Logger for what the schemas' compilation has to say. Default: none. */
  logger?: Logger;
  /** Turns an absolute path into the name shown in messages. Default: the path as given. */
  displayPath?: (file: string) => string;
}

export type ValidationResult =
  | { readonly ok: true; readonly value: unknown; readonly secrets: readonly string[] }
  | { readonly ok: false; readonly errors: readonly SchemaError[] };

/** One schema text as ajv holds it: files with the same text (and, without `$id`, the same directory) share it. */
interface Group {
  readonly text: string;
  readonly files: string[];
  /** The ajv key of the group: the file URL of its first file (relative `$ref`s resolve against it). */
  readonly key: string;
  dialect?: Dialect;
  schema?: AnySchemaObject | boolean;
  error?: SchemaError;
  validate?: ValidateFunction;
  /** Has a `$ref` to something outside itself: another schema's change may change its meaning. */
  external: boolean;
  /** Its plain validator, generated at build time from the same text (precompiled.ts). */
  precompiled?: Precompiled | undefined;
  readonly variants: Map<Variant, ValidateFunction | Error>;
}

/** `plain`: the schema as written. `safe`: with the safe-integer check. `defaults`: as written, ajv filling defaults.
 *  `first`: as written, stopping at the first error (a large document, see ALL_ERRORS_MAX_VALUES). */
type Variant = 'plain' | 'safe' | 'defaults' | 'first';

/**
 * A document with more values than this meets the `first` variant first, and is refused with that error alone:
 * ajv's allErrors mode makes one error object per failing value, and 524,000 failing values of a 1 MiB file took
 * 512 ms of one thread and 80 MiB (measured, ajv 8). Below it, every error is collected (then capped): a few tens
 * of ms at most.
 */
export const ALL_ERRORS_MAX_VALUES = 10_000;

/** The schemas of one state of the directory, compiled into fresh ajv instances. */
interface Generation {
  readonly groups: Map<string, Group>;
  readonly byName: Map<string, Group>;
  readonly instances: Map<string, AnyAjv>;
  readonly hasSecrets: boolean;
  /** `$ref` targets the secret walk resolved (by base and reference), null for none. */
  readonly refs: Map<string, { schema: unknown; base: string } | null>;
}

/**
 * The instances that check schemas against their meta-schemas, one per dialect, shared by every registry of the
 * process: they hold no user schema and their options never vary, and compiling a meta-schema costs ~100 ms (the
 * daemon's settings file and its configs, or `hotconf check`, would pay it twice).
 */
const META = new Map<Dialect, AnyAjv>();

/**
 * Loads and compiles the schemas of one directory. `validate()` is synchronous; `reload()` re-reads schema
 * files (all, or the ones named) and reports which config names must be validated again.
 */
export class SchemaRegistry {
  readonly schemaDir: string;
  private readonly options: SchemaRegistryOptions;
  /** The text of every schema file read, by config name (a read error is `\0` + its detail). */
  private readonly sources = new Map<string, { readonly file: string; readonly text: string }>();
  private gen: Generation = { groups: new Map(), byName: new Map(), instances: new Map(), hasSecrets: false, refs: new Map() };
  /** The group being compiled: ajv's warnings are about it. */
  private compiling: { group: Group; refusals: string[] } | undefined;
  /** Groups being compiled (explaining a missing $ref compiles the schema it names, which may lead back). */
  private readonly inProgress = new Set<Group>();
  /** What was logged already (a message once per schema text). */
  private readonly logged = new Set<string>();

  constructor(options: SchemaRegistryOptions) {
    this.options = options;
    this.schemaDir = path.resolve(options.schemaDir);
  }

  /** Names that have a schema (possibly a broken one). */
  names(): string[] {
    return [...this.sources.keys()].sort();
  }

  has(name: string): boolean {
    return this.sources.has(name);
  }

  /** The problem with the schema of `name`, if its file is not a valid schema. */
  schemaError(name: string): SchemaError | undefined {
    const group = this.gen.byName.get(name);
    if (group) this.compiled(group);
    return group?.error;
  }

  /** Absolute path of the schema file for a config name (whether or not it exists). */
  fileFor(name: string): string {
    return path.join(this.schemaDir, ...name.split('/')) + SCHEMA_SUFFIX;
  }

  /** The config name a schema file serves, or undefined if `file` is not a schema file of this dir. */
  nameOfFile(file: string): string | undefined {
    const abs = path.resolve(file);
    if (!isInside(abs, this.schemaDir)) return undefined;
    const rel = toPosix(path.relative(this.schemaDir, abs));
    // A file named just `.schema.json` serves no config name (names.ts), but validateOnce may be handed one, and
    // has always validated against it under the name ''. Walks and the watcher skip it (hidden) in the daemon.
    return rel === SCHEMA_SUFFIX ? '' : schemaNameOf(rel);
  }

  /**
   * Re-reads the given schema files (absolute paths; missing ones are dropped). Returns the config names whose
   * schema text changed, appeared or disappeared, and, when anything changed, every name whose schema refers to
   * another: those configs must be validated again. `onRead` hears the identity of each version read, or
   * undefined for a file that could not be read.
   */
  async reload(files: Iterable<string>, onRead?: (file: string, identity: FileIdentity | undefined, error?: ReadError) => void): Promise<string[]> {
    const byName = new Map<string, string>();
    for (const file of files) {
      const name = this.nameOfFile(file);
      if (name !== undefined) byName.set(name, path.resolve(file));
    }
    const maxFileBytes = this.options.maxSchemaBytes ?? DEFAULT_MAX_SCHEMA_BYTES;
    const results = await mapLimit([...byName], 16, async ([name, file]) => {
      let text: string | undefined;
      try {
        // The same careful read as configs: a FIFO or a huge file in the schema dir must not hang or flood us.
        const { bytes, identity } = await readStable(file, { maxFileBytes, displayPath: this.display(file) });
        onRead?.(file, identity);
        text = bytes.toString('utf8');
      } catch (err) {
        if (!(err instanceof ReadError)) throw err;
        onRead?.(file, undefined, err);
        if (err.code !== 'E_NOT_FOUND') text = `\0${err.detail}`;
      }
      return { name, file, text };
    });
    const changed = new Set<string>();
    for (const { name, file, text } of results) {
      const old = this.sources.get(name);
      if (text === undefined) {
        if (old && this.sources.delete(name)) changed.add(name);
      } else if (old?.text !== text || old.file !== file) {
        this.sources.set(name, { file, text });
        changed.add(name);
      }
    }
    if (changed.size === 0) return [];
    this.gen = this.build();
    for (const [name, group] of this.gen.byName) if (group.external) changed.add(name);
    return [...changed].sort();
  }

  /** Validates `value` against the schema of `name`. With `useDefaults`, the value of a valid result is a filled copy. */
  validate(name: string, value: unknown, parsed: ParsedConfig, file: string, requireSchema = true): ValidationResult {
    const checked = this.check(name, value, file, requireSchema);
    if (!('failures' in checked)) return checked;
    const positions = checked.failures.map((f) => parsed.locate(f.pointer, { key: f.key }));
    return { ok: false, errors: toSchemaErrors(checked, positions, file) };
  }

  /**
   * {@link validate}, for a config parsed off the main thread: positions of validation errors are then resolved
   * by `parsed.locateAll` without blocking (a large document is only re-read when it is invalid).
   */
  async validateAsync(
    name: string,
    value: unknown,
    parsed: ParsedConfig & { locateAll?: (requests: ReadonlyArray<{ pointer: string; key?: boolean }>) => Promise<Array<Position | undefined>> },
    file: string,
    requireSchema = true,
  ): Promise<ValidationResult> {
    if (!parsed.locateAll) return this.validate(name, value, parsed, file, requireSchema);
    const checked = this.check(name, value, file, requireSchema);
    if (!('failures' in checked)) return checked;
    const positions = await parsed.locateAll(checked.failures);
    return { ok: false, errors: toSchemaErrors(checked, positions, file) };
  }

  /** Runs the schema; failures carry pointers only (positions are the caller's choice of how to find them). */
  private check(name: string, value: unknown, file: string, requireSchema: boolean): ValidationResult | Failures {
    const group = this.gen.byName.get(name);
    if (!group) {
      if (!requireSchema) return { ok: true, value, secrets: [] };
      return {
        ok: false,
        errors: [new SchemaError('E_NO_SCHEMA', { file }, `no schema for config '${name}' (expected ${this.display(this.fileFor(name))})`)],
      };
    }
    const validate = this.compiled(group);
    if (group.error || !validate) {
      return { ok: false, errors: [new SchemaError('E_SCHEMA_INVALID', { file }, `its schema is invalid: ${group.error?.message ?? 'unknown'}`)] };
    }
    try {
      const maxErrors = this.options.maxErrors ?? 20;
      // The verdict is on what was written: no defaults, no hotconf keywords. A large document gets it from the
      // validator that stops at its first error (see ALL_ERRORS_MAX_VALUES): the same verdict, at bounded cost, and
      // one pass whether it is valid or not.
      const large = !fewValues(value, ALL_ERRORS_MAX_VALUES);
      const verdict = large ? this.variant(group, 'first') : validate;
      if (!verdict(value)) return { ...describeErrors(verdict.errors ?? [], maxErrors), ...(large ? { uncounted: true } : {}) };
      if (hasUnsafeInteger(value)) {
        const safe = this.variant(group, 'safe');
        if (!safe(value)) {
          const errors = safe.errors ?? [];
          const own = errors.filter((e) => e.keyword === SAFE_INTEGER_KEYWORD);
          return describeErrors(own.length > 0 ? own : errors, maxErrors);
        }
      }
      let result = value;
      if (this.options.useDefaults) {
        const filled = structuredClone(value);
        const fill = this.variant(group, 'defaults');
        // ajv fills defaults while it validates: its verdict is on the filled copy. A default that would make
        // the document invalid (a wrongly typed one, one that breaks a oneOf) leaves the written value alone.
        if (fill(filled)) result = filled;
        else {
          this.options.logger?.warn(
            { file, errors: describeErrors(fill.errors ?? [], maxErrors).failures.map((f) => `${f.pointer || '/'}: ${f.detail}`) },
            'schema defaults not applied: the document with them filled in would be invalid; the value is used as written',
          );
        }
      }
      const secrets = this.gen.hasSecrets ? this.secretsOf(group, result) : [];
      return { ok: true, value: result, secrets };
    } catch (err) {
      // A validator that throws (ajv overflowing its stack on a `$dynamicRef` loop, a custom format that throws)
      // is this config's problem, and nothing else's.
      const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      return {
        ok: false,
        errors: [new SchemaError('E_SCHEMA_INVALID', { file }, `its schema ${this.display(group.files[0]!)} could not validate it: the validator threw ${why}`)],
      };
    }
  }

  /**
   * Where the secrets of `value` would be as config `name`, whether or not it is valid (a refused document's lines
   * are shown with them masked): [] when its schema marks none or it has no schema, undefined when that cannot be
   * told (its schema is broken or not compiled). Over-marks, as findSecrets does.
   */
  secretsFor(name: string, value: unknown): readonly string[] | undefined {
    const group = this.gen.byName.get(name);
    if (!group) return [];
    if (!this.mayMarkSecrets(group)) return [];
    if (group.error || !this.compiled(group)) return undefined;
    try {
      return this.secretsOf(group, value);
    } catch {
      return undefined;
    }
  }

  /** Does the schema of config `name` mark any secret (or is there no telling: a broken schema)? */
  marksSecrets(name: string): boolean {
    const group = this.gen.byName.get(name);
    return group !== undefined && (group.error !== undefined || this.mayMarkSecrets(group));
  }

  /** Its own text marks a secret, or it refers to other schemas and some schema does. */
  private mayMarkSecrets(group: Group): boolean {
    return mentionsSecret(group.text) || (group.external && this.gen.hasSecrets);
  }

  private secretsOf(group: Group, value: unknown): string[] {
    const ajv = this.gen.instances.get(`plain ${group.dialect}`);
    const root = group.schema;
    // No instance: only a precompiled group, which has no reference to resolve (prepare).
    if ((!ajv && !group.precompiled) || typeof root !== 'object') return [];
    const base = typeof root.$id === 'string' ? (resolveUri(root.$id, group.key) ?? group.key) : group.key;
    const refs = this.gen.refs;
    return findSecrets(root, value, base, (ref, b) => {
      const key = `${b}\0${ref}`;
      let target = refs.get(key);
      if (target === undefined) {
        target = null;
        const abs = resolveUri(ref, b);
        try {
          const v = abs === undefined || !ajv ? undefined : ajv.getSchema(abs);
          const env = (v as { schemaEnv?: { baseId?: string } } | undefined)?.schemaEnv;
          if (v) target = { schema: v.schema, base: env?.baseId || abs! };
        } catch {
          // unresolvable: nothing to mark through it
        }
        refs.set(key, target);
      }
      return target ?? undefined;
    });
  }

  /** The group's validator of another variant, compiled on first use. Throws what its compilation threw. */
  private variant(group: Group, variant: Variant): ValidateFunction {
    let v = group.variants.get(variant);
    if (v === undefined) {
      try {
        v = this.instance(variant, group.dialect!).getSchema(group.key) ?? new Error('not found');
      } catch (err) {
        v = err instanceof Error ? err : new Error(String(err));
      }
      group.variants.set(variant, v);
    }
    if (v instanceof Error) throw v;
    return v;
  }

  /** The ajv instance of one variant and dialect, every schema of that dialect added (not compiled). */
  private instance(variant: Variant, dialect: Dialect): AnyAjv {
    const id = `${variant} ${dialect}`;
    let ajv = this.gen.instances.get(id);
    if (ajv) return ajv;
    ajv = variantInstance(variant, dialect, {
      strict: this.options.schemaStrict ?? false,
      formats: this.options.formats ?? {},
      onWarning: (message) => this.onWarning(message),
      onUnsupportedPattern: (pattern, reason) => this.onUnsupportedPattern(pattern, reason),
    });
    this.gen.instances.set(id, ajv);
    for (const group of this.gen.groups.values()) {
      if (group.dialect !== dialect || group.schema === undefined || (variant !== 'plain' && group.error)) continue;
      const schema = variant === 'safe' && typeof group.schema === 'object' ? markSafeIntegers(group.schema) : group.schema;
      // Checked against its meta-schema here rather than inside addSchema, to say where in the file; by an
      // instance that lives on, as compiling a meta-schema costs ~100 ms.
      const metaErrors = variant === 'plain' && typeof schema === 'object' ? this.metaCheck(dialect, schema) : null;
      if (metaErrors) {
        const errors = metaErrors;
        const detail = errors
          .slice(0, 3)
          .map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`)
          .join('; ');
        group.error = this.located(group, errors[0]?.instancePath ?? '', `is not a valid ${dialect} schema: ${detail}`);
        continue;
      }
      try {
        for (const file of group.files) ajv.addSchema(schema, pathToFileURL(file).href, undefined, false);
      } catch (err) {
        if (variant === 'plain') group.error ??= this.schemaProblem(group, err);
      }
    }
    return ajv;
  }

  /**
   * The group's validator, compiled on first use: a change to one schema file rebuilds the instances, and only
   * the schemas of configs validated again (the changed ones, and those with references) are compiled again.
   */
  private compiled(group: Group): ValidateFunction | undefined {
    if (!group.validate && !group.error && !this.inProgress.has(group)) this.compile(group);
    return group.validate;
  }

  /**
   * The schema checked against its meta-schema: null when valid, else ajv's errors. The meta-schemas' validators
   * are generated at build time (precompiled.ts); without them, an ajv instance per dialect compiles them.
   */
  private metaCheck(dialect: Dialect, schema: AnySchemaObject): ErrorObject[] | null {
    const uri = typeof schema.$schema === 'string' ? schema.$schema : DEFAULT_META[dialect];
    const pre = metaValidator(uri);
    if (pre) return pre(schema) ? null : (pre.errors ?? []);
    const meta = this.metaAjv(dialect);
    return meta.validateSchema(schema) ? null : (meta.errors ?? []);
  }

  private metaAjv(dialect: Dialect): AnyAjv {
    let ajv = META.get(dialect);
    if (!ajv) {
      ajv = createAjv(dialect, { strict: false, useDefaults: false, formats: {}, onWarning: () => undefined, onUnsupportedPattern: (p) => new RegExp(p, 'u') });
      META.set(dialect, ajv);
    }
    return ajv;
  }

  /** Every schema read, grouped by text, added to its dialect's instance; compiled when first used. */
  private build(): Generation {
    const groups = new Map<string, Group>();
    const byName = new Map<string, Group>();
    let hasSecrets = false;
    for (const [name, { file, text }] of [...this.sources].sort((a, b) => (a[1].file < b[1].file ? -1 : 1))) {
      const external = EXTERNAL_REF.test(text);
      // Relative `$ref`s of a schema without `$id` resolve against its file: such copies share only within a directory.
      const key = text.startsWith('\0') ? `${file}\0${text}` : !external || /"\$id"/.test(text) ? text : `${path.dirname(file)}\0${text}`;
      let group = groups.get(key);
      if (!group) {
        group = { text, files: [], key: pathToFileURL(file).href, external, variants: new Map() };
        groups.set(key, group);
      }
      group.files.push(file);
      byName.set(name, group);
      hasSecrets ||= mentionsSecret(text);
    }
    const previous = this.gen;
    this.gen = { groups, byName, instances: new Map(), hasSecrets, refs: new Map() };
    try {
      for (const group of groups.values()) this.prepare(group);
      for (const group of groups.values()) if (!group.error && !group.precompiled) this.instance('plain', group.dialect!);
      return this.gen;
    } finally {
      this.gen = previous;
    }
  }

  /** Parses a group's text and finds its dialect; a problem becomes its error. */
  private prepare(group: Group): void {
    const display = this.display(group.files[0]!);
    if (group.text.startsWith('\0')) {
      group.error = new SchemaError('E_SCHEMA_INVALID', { file: display }, `schema file ${group.text.slice(1)}`);
      return;
    }
    let schema: unknown;
    try {
      schema = JSON.parse(group.text);
    } catch (err) {
      group.error = new SchemaError('E_SCHEMA_INVALID', { file: display }, `not valid JSON: ${(err as Error).message}`);
      return;
    }
    if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
      group.error = new SchemaError('E_SCHEMA_INVALID', { file: display }, 'a schema must be a JSON object or a boolean');
      return;
    }
    const dialect = dialectOf(schema);
    if (typeof dialect === 'string') {
      group.error = this.located(group, '/$schema', dialect);
      return;
    }
    if (typeof schema === 'object' && dialect.uri !== undefined) (schema as AnySchemaObject).$schema = dialect.uri;
    group.dialect = dialect.dialect;
    group.schema = schema;
    // A schema generated at build time (hotconf's own settings schema) is used as such when nothing here could make
    // it compile differently: ajv's defaults for the rest, no formats of the user's, no reference out of itself.
    // Its secrets are found without ajv when it has no reference at all (secretsOf resolves references with ajv).
    const eligible = !this.options.schemaStrict && Object.keys(this.options.formats ?? {}).length === 0 && !group.external;
    if (eligible && !(mentionsSecret(group.text) && ANY_REF.test(group.text))) {
      group.precompiled = precompiledSchema(group.text, group.dialect, (pattern, reason) => this.onUnsupportedPattern(pattern, reason));
    }
  }

  private compile(group: Group): void {
    const ajv = group.precompiled ? undefined : this.instance('plain', group.dialect!);
    const outer = this.compiling; // compiling another group's schema to explain a missing $ref
    this.compiling = { group, refusals: [] };
    this.inProgress.add(group);
    try {
      // What ajv said while compiling it at build time is heard now, as if it were compiled here.
      for (const warning of group.precompiled?.warnings ?? []) this.onWarning(warning);
      const validate = group.precompiled ? group.precompiled.validate : ajv!.getSchema(group.key);
      if (!validate) throw new Error('not added');
      if (this.compiling.refusals.length > 0) {
        const [first] = this.compiling.refusals;
        group.error = this.located(group, schemaPathOf(first!) ?? '', `${first!.replace(' ignored in schema at path', ' at')} (unknownFormats: 'refuse')`);
      } else {
        group.validate = validate;
      }
    } catch (err) {
      group.error = this.schemaProblem(group, err);
    } finally {
      this.compiling = outer;
      this.inProgress.delete(group);
    }
  }

  /** What ajv threw while adding or compiling a group, as the schema file's error. */
  private schemaProblem(group: Group, err: unknown): SchemaError {
    const e = err as Error & { missingRef?: string; missingSchema?: string };
    if (typeof e.missingRef === 'string') return this.located(group, '', this.missingRefDetail(group, e.missingRef, e.missingSchema ?? e.missingRef));
    const dup = /^schema with key or id "(.*)" already exists$/.exec(e.message);
    if (dup) {
      const other = [...this.gen.groups.values()].find((g) => g !== group && typeof g.schema === 'object' && normalizeId(g.schema.$id) === dup[1]);
      const where = other ? ` ${this.display(other.files[0]!)} has it too` : '';
      return this.located(group, '/$id', `its $id ${JSON.stringify(dup[1])} is not unique:${where || ' another schema has it'} (an $id names one schema)`);
    }
    const message = e.message.replace(' ignored in schema at path', ' at');
    return this.located(group, schemaPathOf(message) ?? '', message);
  }

  private missingRefDetail(group: Group, ref: string, resource: string): string {
    for (const other of this.gen.groups.values()) {
      const urls = other.files.map((f) => pathToFileURL(f).href);
      const id = typeof other.schema === 'object' ? normalizeId(other.schema.$id) : undefined;
      if (!urls.includes(resource) && id !== resource) continue;
      const shown = this.display(other.files[0]!);
      if (other !== group && other.dialect === group.dialect) this.compiled(other); // its own error, if it has one
      if (other.error) return `$ref ${JSON.stringify(ref)} names ${shown}, which is invalid`;
      if (other.dialect !== group.dialect) {
        return `$ref ${JSON.stringify(ref)} names ${shown}, a ${other.dialect} schema, from a ${group.dialect} one: a $ref cannot cross drafts (give both the same $schema)`;
      }
      const at = ref.includes('#') ? ` at ${JSON.stringify(ref.slice(ref.indexOf('#')))}` : '';
      return `$ref ${JSON.stringify(ref)} cannot be resolved: ${shown} has nothing${at}`;
    }
    if (resource.startsWith('file:')) {
      return `$ref ${JSON.stringify(ref)} cannot be resolved: there is no schema file ${this.display(decodeURIComponent(new URL(resource).pathname))}`;
    }
    return (
      `$ref ${JSON.stringify(ref)} cannot be resolved: no schema in the schema directory has the $id ${JSON.stringify(resource)}. ` +
      `hotconf never fetches schemas: save that schema as a file in the schema directory, with "$id": ${JSON.stringify(resource)}`
    );
  }

  /** A schema error at `pointer` in the group's first file, with its line and column when they can be found. */
  private located(group: Group, pointer: string, detail: string): SchemaError {
    const file = this.display(group.files[0]!);
    let at: Position | undefined;
    if (pointer !== '') {
      try {
        at = parseConfig(group.text, 'json', file, { maxDepth: 100_000, maxAliasCount: 0 }).locate(pointer);
      } catch {
        // no position then
      }
    }
    return new SchemaError('E_SCHEMA_INVALID', { file, line: at?.line, col: at?.col, pointer: pointer || undefined }, detail);
  }

  private onWarning(message: string): void {
    const group = this.compiling?.group;
    const unknownFormat = message.startsWith('unknown format');
    if (unknownFormat && group && this.options.unknownFormats === 'refuse') {
      this.compiling!.refusals.push(message);
      return;
    }
    const key = `${group?.key ?? ''}\0${message}`;
    if (this.logged.has(key)) return;
    if (this.logged.size >= 10_000) this.logged.clear(); // bounded: at worst a message is logged again
    this.logged.add(key);
    const schema = group ? this.display(group.files[0]!) : undefined;
    if (unknownFormat) this.options.logger?.info({ schema, ajv: message.replace(' ignored in schema at path', ' at') }, 'unknown format ignored (an annotation)');
    else this.options.logger?.debug({ schema, ajv: message }, 'schema lint (strict mode would refuse it)');
  }

  private onUnsupportedPattern(pattern: string, reason: string): RegExpLike {
    const detail = `pattern ${JSON.stringify(pattern)} cannot run in the linear-time regex engine (${reason})`;
    if (this.options.schemaStrict) throw new Error(`${detail}: lookaround and backreferences are refused in strict mode`);
    const key = `\0pattern\0${pattern}`;
    if (!this.logged.has(key)) {
      this.logged.add(key);
      const group = this.compiling?.group;
      this.options.logger?.warn(
        { schema: group ? this.display(group.files[0]!) : undefined, pattern, reason },
        'pattern runs in the ECMAScript engine, without a time bound (lookaround or backreference)',
      );
    }
    return new RegExp(pattern, 'u');
  }

  private display(file: string): string {
    return this.options.displayPath ? this.options.displayPath(file) : file;
  }
}

export const DEFAULT_MAX_SCHEMA_BYTES = 16 * 1_048_576;

/** A new ajv instance of one variant (see Variant) and dialect, with hotconf's keywords. Also used at build time. */
export function variantInstance(variant: Variant, dialect: Dialect, o: Omit<DialectOptions, 'useDefaults' | 'allErrors'>): AnyAjv {
  const ajv = createAjv(dialect, { ...o, useDefaults: variant === 'defaults', allErrors: variant !== 'first' });
  ajv.addKeyword({ keyword: SECRET_KEYWORD, schemaType: 'boolean' });
  ajv.addKeyword({
    keyword: SAFE_INTEGER_KEYWORD,
    schemaType: 'boolean',
    validate: (on: boolean, data: unknown) => !on || typeof data !== 'number' || !Number.isInteger(data) || Number.isSafeInteger(data),
  });
  return ajv;
}

/** Any `$ref` (or dynamic one), inside its document or not. */
const ANY_REF = /"\$(?:ref|dynamicRef|recursiveRef)"\s*:/;

/** A `$ref` (or dynamic one) that leaves its own document. */
const EXTERNAL_REF = /"\$(?:ref|dynamicRef|recursiveRef)"\s*:\s*"(?!#)/;

function normalizeId(id: unknown): string | undefined {
  return typeof id === 'string' ? id.replace(/#$/, '') : undefined;
}

/** The JSON pointer of the schema location an ajv message names (`at "#/properties/a"`, `path "#/x"`). */
function schemaPathOf(message: string): string | undefined {
  const m = /(?:at|path) "[^"#]*#([^"]*)"/.exec(message);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return m[1];
  }
}

/** Does `value` hold an integer that a double cannot hold exactly? */
function hasUnsafeInteger(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'number') {
      if (Number.isInteger(node) && !Number.isSafeInteger(node)) return true;
    } else if (Array.isArray(node)) stack.push(...(node as unknown[]));
    else if (typeof node === 'object' && node !== null) stack.push(...Object.values(node as Record<string, unknown>));
  }
  return false;
}

interface Failure {
  readonly pointer: string;
  readonly key: boolean;
  readonly detail: string;
}

/** The first failures of a refused document (positions are found for these only), and how many more there were. */
interface Failures {
  readonly failures: Failure[];
  readonly more: number;
  readonly uncounted?: boolean;
}

/** True when `value` holds at most `max` values (objects, arrays and scalars), counted without recursion. */
function fewValues(value: unknown, max: number): boolean {
  const stack: unknown[] = [value];
  let count = 0;
  while (stack.length > 0) {
    if (++count > max) return false;
    const node = stack.pop();
    if (Array.isArray(node)) {
      if (count + node.length > max) return false;
      for (const v of node) stack.push(v);
    } else if (typeof node === 'object' && node !== null) {
      for (const v of Object.values(node)) stack.push(v);
    }
  }
  return true;
}

/** ajv's errors as pointer + wording, deduplicated, the first `max` kept; the key of a map entry where the key
 *  itself is the problem. */
function describeErrors(errors: readonly ErrorObject[], max: number): Failures {
  const out: Failure[] = [];
  let more = 0;
  const seen = new Set<string>();
  for (const e of errors) {
    let pointer = e.instancePath;
    let key = false;
    let detail = e.message ?? `failed '${e.keyword}'`;
    const params = e.params as Record<string, unknown>;
    if (e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties') {
      const prop = String(params.additionalProperty ?? params.unevaluatedProperty);
      pointer = `${pointer}/${escapePointer(prop)}`;
      key = true;
      detail = `is not allowed here (${e.keyword} of ${e.instancePath === '' ? '/' : e.instancePath})`;
    } else if (e.keyword === 'propertyNames' && typeof params.propertyName === 'string') {
      pointer = `${pointer}/${escapePointer(params.propertyName)}`;
      key = true;
    } else if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) {
      detail = `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (e.keyword === SAFE_INTEGER_KEYWORD) {
      detail = SAFE_INTEGER_DETAIL;
    } else if (e.keyword === 'const') {
      detail = `must be ${JSON.stringify(params.allowedValue)}`;
    }
    const id = `${pointer}\0${detail}`;
    if (seen.has(id)) continue;
    seen.add(id);
    if (out.length < max) out.push({ pointer, key, detail });
    else more++;
  }
  return { failures: out, more };
}

/** Failures at their positions, in the order a reader meets them in the file, then how many more there were. */
function toSchemaErrors({ failures, more, uncounted }: Failures, positions: ReadonlyArray<Position | undefined>, file: string): SchemaError[] {
  const out = failures.map(
    ({ pointer, detail }, i) => new SchemaError('E_SCHEMA', { file, line: positions[i]?.line, col: positions[i]?.col, pointer }, detail),
  );
  out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  if (uncounted || more > 0) out.push(new SchemaError('E_MORE_ERRORS', { file }, moreErrorsDetail(out.length, uncounted ? 'uncounted' : more)));
  return out;
}


/**
 * A copy of `schema` where every subschema that allows integers carries the safe-integer check. Values of data
 * keywords (`default`, `const`, `enum`, `examples`) are data, not subschemas: they are left alone; the members
 * of `properties` and other maps of subschemas are subschemas whatever their names (`default` included).
 */
function markSafeIntegers(schema: AnySchemaObject): AnySchemaObject {
  const copy = structuredClone(schema);
  const stack: unknown[] = [copy];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      stack.push(...(node as unknown[]));
    } else if (typeof node === 'object' && node !== null) {
      const obj = node as Record<string, unknown>;
      if (obj.type === 'integer' || (Array.isArray(obj.type) && obj.type.includes('integer'))) obj[SAFE_INTEGER_KEYWORD] = true;
      for (const [k, v] of Object.entries(obj)) {
        if (DATA_KEYWORDS.has(k) || typeof v !== 'object' || v === null) continue;
        if (SCHEMA_MAPS.has(k) && !Array.isArray(v)) stack.push(...Object.values(v as Record<string, unknown>));
        else stack.push(v);
      }
    }
  }
  return copy;
}

const DATA_KEYWORDS = new Set(['default', 'const', 'enum', 'examples']);
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas', 'dependencies']);

/** A deep copy of `value` with the values at `secrets` (JSON pointers) replaced by `'[REDACTED]'`. */
export function redact(value: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return value;
  if (secrets.includes('')) return REDACTED;
  const copy = structuredClone(value) as Record<string, unknown>;
  for (const pointer of secrets) {
    const parts = parsePointer(pointer);
    if (parts === undefined) continue; // not a JSON pointer: it names no value
    let node: unknown = copy;
    for (let i = 0; i < parts.length - 1 && typeof node === 'object' && node !== null; i++) {
      node = (node as Record<string, unknown>)[parts[i]!];
    }
    const last = parts[parts.length - 1]!;
    if (typeof node === 'object' && node !== null && Object.hasOwn(node, last)) {
      (node as Record<string, unknown>)[last] = REDACTED;
    }
  }
  return copy;
}

export const REDACTED = '[REDACTED]';

/** `text` with every occurrence of each of `values` replaced by {@link REDACTED}, in the order given (longest first,
 *  so that a secret that contains another is masked whole). */
export function maskValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of values) out = out.split(v).join(REDACTED);
  return out;
}
