// The error hierarchy every stage of the pipeline throws or reports. It sits beside the modules rather
// than inside one because load, validate, the store's owner and the shells all speak it; it imports nothing.
// Messages read `config/app.yaml:12:5: /server/port: must be <= 65535` and never quote the config's
// values, so that an error can be logged or served without leaking a secret (DESIGN.md point 10).

/** Stable machine-readable codes. Adding one is fine; renaming one breaks users. */
export type HotconfErrorCode =
  | 'E_OPTIONS'
  /** etcd refused a request as too large or as too many operations (a server limit, not the network). */
  | 'E_SOURCE_LIMIT'
  /** A fleet command refused by the fleet's state (a canary in progress, plain keys, a release no longer kept). */
  | 'E_FLEET'
  | 'E_CLOSED'
  | 'E_READ'
  | 'E_NOT_FOUND'
  | 'E_NOT_FILE'
  | 'E_TOO_LARGE'
  | 'E_UNSTABLE'
  | 'E_ENCODING'
  | 'E_PARSE'
  | 'E_DUPLICATE_KEY'
  | 'E_ALIAS_LIMIT'
  | 'E_DEPTH'
  | 'E_FORBIDDEN_KEY'
  | 'E_TAG'
  | 'E_SCHEMA'
  | 'E_NO_SCHEMA'
  | 'E_SCHEMA_INVALID'
  | 'E_DUPLICATE_NAME'
  | 'E_NAME'
  | 'E_LINK_OUTSIDE'
  | 'E_TOO_DEEP'
  | 'E_MORE_ERRORS'
  | 'E_APP_CHECK'
  | 'E_INITIAL_LOAD'
  | 'E_SOURCE_UNAVAILABLE'
  | 'E_SOURCE_AUTH'
  /** A fleet release named by the head is missing or damaged in etcd. */
  | 'E_SOURCE_RELEASE'
  | 'E_PUSH_CONFLICT';

export interface HotconfErrorOptions {
  cause?: unknown;
}

/** Base class: `err.code` is one of {@link HotconfErrorCode}. */
export class HotconfError extends Error {
  readonly code: HotconfErrorCode;

  constructor(code: HotconfErrorCode, message: string, options: HotconfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** Where in a config file a problem is. `line` and `col` are 1-based; `pointer` is an RFC 6901 JSON pointer. */
export interface ErrorLocation {
  file: string;
  line?: number | undefined;
  col?: number | undefined;
  pointer?: string | undefined;
}

/** A problem with one config file (or one config name). Carries its location; the message is formatted from it. */
export class ConfigError extends HotconfError {
  readonly file: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  readonly pointer: string | undefined;
  /** The bare problem, without the location prefix: `must be <= 65535`. */
  readonly detail: string;

  constructor(code: HotconfErrorCode, location: ErrorLocation, detail: string, options: HotconfErrorOptions = {}) {
    super(code, formatLocation(location, detail), options);
    this.file = location.file;
    this.line = location.line;
    this.col = location.col;
    this.pointer = location.pointer;
    this.detail = detail;
  }

  /** Plain data for logs, status and HTTP: never includes config values. */
  toJSON(): ConfigErrorJSON {
    return {
      code: this.code,
      file: this.file,
      line: this.line,
      col: this.col,
      pointer: this.pointer,
      message: this.message,
    };
  }
}

export interface ConfigErrorJSON {
  code: HotconfErrorCode;
  file: string;
  line: number | undefined;
  col: number | undefined;
  pointer: string | undefined;
  message: string;
}

/** The file could not be read: missing, not a regular file, too large, changing under us, bad encoding. */
export class ReadError extends ConfigError {}

/** The bytes are not a well-formed, safe YAML/JSON document. */
export class ParseError extends ConfigError {}

/** The document does not satisfy its JSON Schema, or has no schema, or its schema is broken. */
export class SchemaError extends ConfigError {}

/** Two files claim one config name (`app.yaml` and `app.json`). */
export class NameConflictError extends ConfigError {}

/** The application's own check (the `check` hook, the daemon's `validate.command`) refused the candidate version. */
export class AppCheckError extends ConfigError {}

/**
 * At most `max` errors of one config, then one `E_MORE_ERRORS` entry saying how many more there were (`more`:
 * known beyond those given; `'uncounted'`: validation stopped early, the count is unknown). A refusal then costs
 * the same to keep, log, serve and print whatever the file holds (DESIGN.md point 11).
 */
export function capErrors(errors: readonly ConfigError[], max: number, more: number | 'uncounted' = 0): ConfigError[] {
  if (more === 0 && errors.at(-1)?.code === 'E_MORE_ERRORS' && errors.length <= max + 1) return [...errors]; // capped already
  const kept: ConfigError[] = errors.slice(0, max);
  const extra = more === 'uncounted' ? 'uncounted' : more + Math.max(0, errors.length - max);
  if (extra === 0 || kept.length === 0) return kept;
  kept.push(new ConfigError('E_MORE_ERRORS', { file: kept[0]!.file }, moreErrorsDetail(kept.length, extra)));
  return kept;
}

/** What the `E_MORE_ERRORS` entry says after `shown` errors. */
export function moreErrorsDetail(shown: number, extra: number | 'uncounted'): string {
  return extra === 'uncounted'
    ? 'further errors, if any, are not collected (a document of over 10,000 values is checked up to its first error)'
    : `and ${extra} more error${extra === 1 ? '' : 's'} (the first ${shown} are shown; option maxErrorsPerConfig)`;
}

/** The initial load found problems; `errors` lists every one of them, not only the first. */
export class InitialLoadError extends HotconfError {
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    const lines = errors.map((e) => `  ${e.message}`).join('\n');
    super('E_INITIAL_LOAD', `initial config is invalid (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n${lines}`);
    this.errors = errors;
  }
}

/** `file:line:col: /pointer: detail`, leaving out the parts that are unknown. */
export function formatLocation(location: ErrorLocation, detail: string): string {
  let where = location.file;
  if (location.line !== undefined) {
    where += `:${location.line}`;
    if (location.col !== undefined) where += `:${location.col}`;
  }
  const pointer = location.pointer === undefined ? '' : ` ${location.pointer === '' ? '/' : location.pointer}:`;
  return `${where}:${pointer} ${detail}`;
}
