// The third stage: a parsed document meets its JSON Schema. Schemas are found by config name
// (`schemas/db/primary.schema.json` for `db/primary`), compiled once with ajv and recompiled when their file
// changes. Every ajv error is mapped back to `file:line:col` of the offending node plus its JSON pointer.
// Properties marked `writeOnly: true` or `x-hotconf-secret: true` are collected as secret pointers.
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formatsModule from 'ajv-formats';
import path from 'node:path';
import type { Logger } from 'pino';
import { mapLimit } from '../async.js';
import { moreErrorsDetail, ReadError, SchemaError } from '../errors.js';
import { readStable, type FileIdentity, type ParsedConfig, type Position } from '../load/index.js';
import { isInside, SCHEMA_SUFFIX, schemaNameOf, toPosix } from '../names.js';
import { escapePointer, parsePointer } from '../pointer.js';

const addFormats = formatsModule.default;

/** Suffix of schema files in the schema directory (the naming rule's, names.ts). */
export { SCHEMA_SUFFIX };

/** The keyword hotconf adds to mark a secret; `writeOnly: true` is treated the same. */
export const SECRET_KEYWORD = 'x-hotconf-secret';

/**
 * Added by hotconf to every subschema that allows integers: an integer beyond ±(2^53 − 1) has already lost
 * digits when it was parsed (`123456789012345678901234567890` reads as 1.2345678901234568e+29), so accepting
 * it would apply a value that is not the one written. JSON Schema's `integer` only asks for no fraction.
 */
const SAFE_INTEGER_KEYWORD = 'x-hotconf-safe-integer';
const SAFE_INTEGER_DETAIL = 'must be an integer from -(2^53 - 1) to 2^53 - 1 (a larger one has lost digits in parsing)';

export interface SchemaRegistryOptions {
  /** Directory holding `<name>.schema.json` files. Required. */
  schemaDir: string;
  /** Fill in `default` values from the schema (ajv `useDefaults`). Default true. */
  useDefaults?: boolean;
  /** Largest schema file accepted, in bytes. Default 1 MiB. */
  maxSchemaBytes?: number;
  /** Logger for ajv's strict-mode warnings. Default: none. */
  logger?: Logger;
  /** Turns an absolute path into the name shown in messages. Default: the path as given. */
  displayPath?: (file: string) => string;
  /** Most errors kept per refused document; the rest are counted in one `E_MORE_ERRORS` entry. Default 20. */
  maxErrors?: number;
}

/**
 * A document with more values than this is validated first by a validator that stops at its first error, and
 * refused with that error alone: ajv's allErrors mode makes one error object per failing value, and 524,000
 * failing values of a 1 MiB file took 512 ms of one thread and 80 MiB (measured, ajv 8). Below it, every error
 * is collected (and then capped): at most a few tens of ms.
 */
export const ALL_ERRORS_MAX_VALUES = 10_000;

export type ValidationResult =
  | { readonly ok: true; readonly value: unknown; readonly secrets: readonly string[] }
  | { readonly ok: false; readonly errors: readonly SchemaError[] };

interface CompiledSchema {
  readonly file: string;
  readonly text: string;
  readonly validate?: ValidateFunction;
  readonly error?: SchemaError;
}

/** A compiled schema shared by every name whose file holds its text; `firstError` is compiled on first need. */
interface SharedValidator {
  readonly validate: ValidateFunction;
  readonly text: string;
  refs: number;
  firstError?: ValidateFunction;
}

/**
 * Loads and compiles the schemas of one directory. `validate()` is synchronous and cheap; `reload()` re-reads
 * schema files (all, or the ones named) and reports which config names are affected.
 */
export class SchemaRegistry {
  readonly schemaDir: string;
  private readonly options: SchemaRegistryOptions;
  private readonly schemas = new Map<string, CompiledSchema>();
  /** Compiled validators by schema text, shared by every name whose schema file holds that text: a tree of
   *  10,000 configs with one schema copied beside each compiles it once (ajv: ~1 ms and ~24 KB per compile). */
  private readonly compiled = new Map<string, SharedValidator>();
  private ajv2020: Ajv2020 | undefined;
  private ajv07: Ajv | undefined;
  /** The same, stopping at the first error: for documents too large to collect every error of. */
  private ajv2020First: Ajv2020 | undefined;
  private ajv07First: Ajv | undefined;
  /** Set while one validate() call runs: ajv's secret keyword reports instance paths into it. */
  private secretSink: string[] | undefined;

  constructor(options: SchemaRegistryOptions) {
    this.options = options;
    this.schemaDir = path.resolve(options.schemaDir);
  }

  /** Names that have a schema (possibly a broken one). */
  names(): string[] {
    return [...this.schemas.keys()].sort();
  }

  has(name: string): boolean {
    return this.schemas.has(name);
  }

  /** The problem with the schema of `name`, if its file is not a valid schema. */
  schemaError(name: string): SchemaError | undefined {
    return this.schemas.get(name)?.error;
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
   * schema text changed, appeared or disappeared: those configs must be validated again. `onRead` hears the
   * identity of each version read, or undefined for a file that could not be read (and why).
   */
  async reload(files: Iterable<string>, onRead?: (file: string, identity: FileIdentity | undefined, error?: ReadError) => void): Promise<string[]> {
    const byName = new Map<string, string>();
    for (const file of files) {
      const name = this.nameOfFile(file);
      if (name !== undefined) byName.set(name, path.resolve(file));
    }
    const results = await mapLimit([...byName], 16, async ([name, file]) => {
      let text: string | undefined;
      try {
        // The same careful read as configs: a FIFO or a huge file in the schema dir must not hang or flood us.
        const { bytes, identity } = await readStable(file, { maxFileBytes: this.options.maxSchemaBytes ?? 1_048_576, displayPath: this.display(file) });
        onRead?.(file, identity);
        text = bytes.toString('utf8');
      } catch (err) {
        if (!(err instanceof ReadError)) throw err;
        onRead?.(file, undefined, err);
        if (err.code !== 'E_NOT_FOUND') text = `\0${err.detail}`;
      }
      return { name, file, text };
    });
    const changed: string[] = [];
    for (const { name, file, text } of results) {
      const old = this.schemas.get(name);
      if (text === undefined) {
        if (old) {
          this.forget(old);
          this.schemas.delete(name);
          changed.push(name);
        }
        continue;
      }
      if (old?.text === text) continue;
      if (old) this.forget(old);
      this.schemas.set(name, this.compile(file, text));
      changed.push(name);
    }
    return changed.sort();
  }

  /** Validates `value` (mutated in place when defaults apply) against the schema of `name`. */
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
    const schema = this.schemas.get(name);
    if (!schema) {
      if (!requireSchema) return { ok: true, value, secrets: [] };
      return {
        ok: false,
        errors: [
          new SchemaError('E_NO_SCHEMA', { file }, `no schema for config '${name}' (expected ${this.display(this.fileFor(name))})`),
        ],
      };
    }
    if (schema.error || !schema.validate) {
      return {
        ok: false,
        errors: [new SchemaError('E_SCHEMA_INVALID', { file }, `its schema is invalid: ${schema.error?.message ?? 'unknown'}`)],
      };
    }
    const maxErrors = this.options.maxErrors ?? 20;
    // A large document meets the validator that stops at its first error first (see ALL_ERRORS_MAX_VALUES).
    if (!fewValues(value, ALL_ERRORS_MAX_VALUES)) {
      const first = this.firstErrorOf(schema);
      if (first && !this.run(first, value, [])) return { ...describeErrors(first.errors ?? [], maxErrors), uncounted: true };
    }
    const secrets: string[] = [];
    if (this.run(schema.validate, value, secrets)) return { ok: true, value, secrets: [...new Set(secrets)].sort() };
    return describeErrors(schema.validate.errors ?? [], maxErrors);
  }

  private run(validate: ValidateFunction, value: unknown, secrets: string[]): boolean {
    this.secretSink = secrets;
    try {
      return validate(value);
    } finally {
      this.secretSink = undefined;
    }
  }

  /** The stop-at-the-first-error twin of a compiled schema (undefined if it does not compile: then the full one runs). */
  private firstErrorOf(schema: CompiledSchema): ValidateFunction | undefined {
    const shared = this.compiled.get(schema.text);
    if (!shared) return undefined;
    if (!shared.firstError) {
      try {
        const marked = shared.validate.schema as AnySchemaObject;
        shared.firstError = this.ajvFor(marked, false).compile(marked);
      } catch {
        return undefined;
      }
    }
    return shared.firstError;
  }

  private compile(file: string, text: string): CompiledSchema {
    const shared = this.compiled.get(text);
    if (shared) {
      shared.refs++;
      return { file, text: shared.text, validate: shared.validate }; // one copy of the text, too
    }
    const display = this.display(file);
    if (text.startsWith('\0')) {
      return { file, text, error: new SchemaError('E_SCHEMA_INVALID', { file: display }, `schema file ${text.slice(1)}`) };
    }
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (err) {
      return { file, text, error: new SchemaError('E_SCHEMA_INVALID', { file: display }, `not valid JSON: ${(err as Error).message}`) };
    }
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      return { file, text, error: new SchemaError('E_SCHEMA_INVALID', { file: display }, 'a schema must be a JSON object') };
    }
    const marked = markSchema(schema);
    try {
      const ajv = this.ajvFor(marked);
      const validate = ajv.compile(marked);
      this.compiled.set(text, { validate, text, refs: 1 });
      return { file, text, validate };
    } catch (err) {
      return { file, text, error: new SchemaError('E_SCHEMA_INVALID', { file: display }, (err as Error).message) };
    }
  }

  /** Drops a compiled schema from ajv's cache so that a new version with the same `$id` can be added. */
  private forget(old: CompiledSchema): void {
    const validate = old.validate;
    if (!validate) return;
    const shared = this.compiled.get(old.text);
    if (shared && --shared.refs > 0) return; // still used by another name
    this.compiled.delete(old.text);
    const id = (validate.schema as AnySchemaObject).$id;
    for (const ajv of [this.ajv2020, this.ajv07, this.ajv2020First, this.ajv07First]) {
      try {
        ajv?.removeSchema(id ?? (validate.schema));
      } catch {
        // not in this instance
      }
    }
  }

  private ajvFor(schema: AnySchemaObject, allErrors = true): Ajv | Ajv2020 {
    const dialect = typeof schema.$schema === 'string' ? schema.$schema : '';
    if (/draft-0[67]/.test(dialect)) {
      if (!allErrors) return (this.ajv07First ??= this.configure(new Ajv(this.ajvOptions(false))));
      this.ajv07 ??= this.configure(new Ajv(this.ajvOptions()));
      return this.ajv07;
    }
    if (!allErrors) return (this.ajv2020First ??= this.configure(new Ajv2020(this.ajvOptions(false))));
    this.ajv2020 ??= this.configure(new Ajv2020(this.ajvOptions()));
    return this.ajv2020;
  }

  private ajvOptions(allErrors = true) {
    const logger = this.options.logger;
    return {
      allErrors,
      strict: true,
      useDefaults: this.options.useDefaults ?? true,
      logger: logger
        ? { log: (...a: unknown[]) => logger.debug({ ajv: a }), warn: (...a: unknown[]) => logger.warn({ ajv: a }, 'schema warning'), error: (...a: unknown[]) => logger.error({ ajv: a }, 'schema error') }
        : (false as const),
    };
  }

  private configure<T extends Ajv | Ajv2020>(ajv: T): T {
    addFormats(ajv);
    ajv.addKeyword({
      keyword: SECRET_KEYWORD,
      schemaType: 'boolean',
      errors: false,
      validate: (isSecret: boolean, _data: unknown, _parent: unknown, cxt?: { instancePath: string }) => {
        if (isSecret && cxt && this.secretSink) this.secretSink.push(cxt.instancePath);
        return true;
      },
    });
    ajv.addKeyword({
      keyword: SAFE_INTEGER_KEYWORD,
      schemaType: 'boolean',
      validate: (on: boolean, data: unknown) => !on || typeof data !== 'number' || !Number.isInteger(data) || Number.isSafeInteger(data),
    });
    return ajv;
  }

  private display(file: string): string {
    return this.options.displayPath ? this.options.displayPath(file) : file;
  }
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
 * A copy of `schema` where every subschema with `writeOnly: true` also carries `x-hotconf-secret: true`, and
 * every subschema that allows integers carries the safe-integer check. Values of data keywords (`default`,
 * `const`, `enum`, `examples`) are data, not subschemas: they are left alone.
 */
function markSchema(schema: AnySchemaObject): AnySchemaObject {
  const copy = structuredClone(schema);
  const stack: unknown[] = [copy];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      stack.push(...(node as unknown[]));
    } else if (typeof node === 'object' && node !== null) {
      const obj = node as Record<string, unknown>;
      if (obj.writeOnly === true && obj[SECRET_KEYWORD] === undefined) obj[SECRET_KEYWORD] = true;
      if (obj.type === 'integer' || (Array.isArray(obj.type) && obj.type.includes('integer'))) obj[SAFE_INTEGER_KEYWORD] = true;
      for (const [k, v] of Object.entries(obj)) if (!DATA_KEYWORDS.has(k) && typeof v === 'object' && v !== null) stack.push(v);
    }
  }
  return copy;
}

const DATA_KEYWORDS = new Set(['default', 'const', 'enum', 'examples']);

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
