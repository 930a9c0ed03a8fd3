// The naming rule, once: which paths (or etcd keys) are configs, what a config is called, where its schema
// is, and how a path is shown in messages. Every source, the pipeline, the schema registry and the shells ask
// here instead of repeating the rule (DESIGN.md "Names").
import path from 'node:path';

export type ConfigFormat = 'yaml' | 'json';

/** '.yaml' | '.yml' -> 'yaml', '.json' -> 'json', in the order candidates are tried. */
export const CONFIG_EXTENSIONS: Readonly<Record<string, ConfigFormat>> = Object.freeze({
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
});

/** `<name>.schema.json` is the schema of config `<name>`. */
export const SCHEMA_SUFFIX = '.schema.json';

/** The format of a path or key from its extension, or undefined when it is not a config extension. */
export function formatOf(file: string): ConfigFormat | undefined {
  const ext = path.posix.extname(file);
  return Object.hasOwn(CONFIG_EXTENSIONS, ext) ? CONFIG_EXTENSIONS[ext] : undefined;
}

/** True for a path segment that hotconf never treats as config: editor temp files, `.git`, ConfigMap internals. */
export function isHidden(segment: string): boolean {
  return segment.startsWith('.');
}

/**
 * The config name of a `/`-separated path relative to the config root (a directory, or an etcd prefix):
 * `db/primary.yaml` → `db/primary`. Undefined for anything that is not a config: another extension, a hidden
 * or empty segment, a bare extension.
 */
export function configNameOf(relative: string): string | undefined {
  const ext = path.posix.extname(relative);
  if (!Object.hasOwn(CONFIG_EXTENSIONS, ext)) return undefined;
  const base = relative.slice(0, relative.length - ext.length);
  if (base === '' || base.split('/').some((s) => s === '' || s === '.' || s === '..' || isHidden(s))) return undefined;
  return base;
}

/** The `/`-separated relative paths that may hold config `name`, one per extension, in a fixed order. */
export function candidatesOf(name: string): string[] {
  return Object.keys(CONFIG_EXTENSIONS).map((ext) => name + ext);
}

/** The config name a schema file serves, from its `/`-separated path relative to the schema dir. */
export function schemaNameOf(relative: string): string | undefined {
  if (!relative.endsWith(SCHEMA_SUFFIX)) return undefined;
  const name = relative.slice(0, -SCHEMA_SUFFIX.length);
  return name === '' ? undefined : name;
}

/**
 * A config name as the store knows it: `/`-separated segments, none empty, `.` or `..`, no backslash or
 * control character, at most 4,096 characters. Anything else cannot name a config.
 */
export function isConfigName(name: string): boolean {
  if (name === '' || name.length > 4096) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c /* \\ */) return false;
  }
  return name.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** A native relative path with `/` separators. */
export function toPosix(relative: string): string {
  return path.sep === '/' ? relative : relative.split(path.sep).join('/');
}

/**
 * True when `p` lies strictly below `dir`; with `orSame`, also when it is `dir` itself. Both must be absolute
 * and normalized (as `path.resolve` returns them): this runs for every file of every sweep, so it compares
 * strings instead of resolving paths again.
 */
export function isInside(p: string, dir: string, orSame = false): boolean {
  if (p === dir) return orSame;
  return p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/**
 * Paths in messages: relative to the working directory when inside it (`config/app.yaml`), else absolute, with
 * control characters escaped (escapeControl): a file name is anyone's to choose, and a newline in one must not
 * forge a line of `hotconf check` output, nor an escape sequence reach the terminal.
 */
export function displayPath(file: string): string {
  return escapeControl(relativeForDisplay(file));
}

function relativeForDisplay(file: string): string {
  const cwd = process.cwd();
  // Under systemd the working directory is `/`: `etc/hotconf/app.yaml` would only confuse.
  if (cwd === path.parse(cwd).root) return file;
  const rel = path.relative(cwd, file);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/**
 * A name or path as it may be shown on a terminal or in a line-oriented report: C0 and C1 control characters,
 * DEL, and the Unicode line separators and bidirectional overrides (which can reorder what a reader sees) are
 * written as `\n`, `\t`, `\r`, `\e` or `\xHH`/`\uHHHH`. Plain text is returned as it is (the same string).
 * A backslash stays (it separates Windows paths): a name can then look escaped, but cannot break a line.
 */
export function escapeControl(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, escapeOne) : text;
}
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const UNSAFE_ALL = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\x1b': '\\e' };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
