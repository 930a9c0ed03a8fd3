// Parsing, the second half of the load stage: bytes become a plain JS value, from YAML 1.2 (core schema) or
// strict JSON, and hostile input (DESIGN.md point 9) is refused before any value exists. The parsed config keeps
// its YAML tree, built lazily for JSON, so that validate can map a JSON pointer back to `file:line:col`.
import { isUtf8 } from 'node:buffer';
import type { Document, ScalarTag, YAMLError } from 'yaml';
import { ParseError, ReadError } from '../errors.js';
import type { ConfigFormat } from '../names.js';
import { integerAtLeast } from './read.js';
import { checkPlain, checkTree, FORBIDDEN_KEYS, locateInTree, spansInTree, type Fail } from './tree.js';
import { yaml } from './yaml.js';

export interface ParseOptions {
  /** Deepest nesting of maps/sequences accepted, in levels (the root collection is level 1). Default 64. */
  maxDepth?: number;
  /**
   * Most YAML alias dereferences accepted in the whole document, counting those that an alias brings in
   * (billion-laughs guard; it also bounds yaml's alias resolution, which is O(aliases × anchors)). Default 100.
   */
  maxAliasCount?: number;
}

/** 1-based; `col` counts UTF-16 code units, as yaml and most editors do. */
export interface Position {
  readonly line: number;
  readonly col: number;
}

export interface ParsedConfig {
  /** Plain JSON-compatible data: objects, arrays, strings, numbers, booleans, null. */
  readonly value: unknown;
  /**
   * Position of the node at `pointer` (RFC 6901, '' = root). With { key: true }, the position of the map KEY
   * of the last segment (used for additionalProperties errors). Falls back to the nearest existing ancestor;
   * undefined only if nothing matches (a pointer that does not start with '/').
   */
  locate(pointer: string, options?: { key?: boolean }): Position | undefined;
  /** The text ranges [start, end) (UTF-16 offsets into the decoded text) holding the value at `pointer`: its node
   *  and, reached through an alias, the anchored node. Used to redact secret values in source text. */
  spans?(pointer: string): Array<[number, number]> | undefined;
}

// yaml reports these as warnings; for a config they mean "this would not be plain data".
const TAG_WARNINGS = new Set(['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE']);

/**
 * The YAML 1.2 core schema's scalar tags, for a value that carries one explicitly (`!!float 1`, `!!int 0x1F`).
 * yaml's own core tags only apply when the value also looks like their type untagged (`!!float 1` would be
 * "unresolved": 1 looks like an int), so these take over for explicit tags: the spec's forms of each type are
 * accepted, anything else is refused with what the tag allows (never the value: it may be a secret).
 */
const CORE_TAG_PREFIX = 'a !!';
const NOT_OF_TYPE = Symbol('not of the type');
function coreTag(name: string, allowed: string, resolve: (source: string) => unknown): ScalarTag {
  const detail = `${CORE_TAG_PREFIX}${name} value must be ${allowed}`;
  return {
    tag: `tag:yaml.org,2002:${name}`,
    default: false, // never chosen for an untagged value
    resolve: (source: string, onError: (message: string) => void) => {
      const value = resolve(source);
      if (value !== NOT_OF_TYPE) return value;
      onError(detail);
      return source;
    },
  };
}
const CORE_SCALAR_TAGS: readonly ScalarTag[] = [
  coreTag('null', 'empty, ~ or null', (s) => (/^(~|null|Null|NULL)?$/.test(s) ? null : NOT_OF_TYPE)),
  coreTag('bool', 'true or false (yes, no, on and off are strings in YAML 1.2)', (s) =>
    /^(true|True|TRUE)$/.test(s) ? true : /^(false|False|FALSE)$/.test(s) ? false : NOT_OF_TYPE,
  ),
  coreTag('int', 'an integer: decimal, 0o octal or 0x hexadecimal', (s) =>
    /^[-+]?[0-9]+$/.test(s)
      ? Number(s)
      : /^0o[0-7]+$/.test(s)
        ? parseInt(s.slice(2), 8)
        : /^0x[0-9a-fA-F]+$/.test(s)
          ? parseInt(s.slice(2), 16)
          : NOT_OF_TYPE,
  ),
  coreTag('float', 'a number, .inf, -.inf or .nan', (s) =>
    /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)
      ? Number(s)
      : /^[-+]?\.(inf|Inf|INF)$/.test(s)
        ? (s.startsWith('-') ? -Infinity : Infinity)
        : /^\.(nan|NaN|NAN)$/.test(s)
          ? NaN
          : NOT_OF_TYPE,
  ),
];

/** displayPath is used in error messages. Throws ParseError or ReadError (E_ENCODING). */
export function parseConfig(
  bytes: Buffer | string,
  format: ConfigFormat,
  displayPath: string,
  options: ParseOptions = {},
): ParsedConfig {
  const { maxDepth = 64, maxAliasCount = 100 } = options;
  integerAtLeast('maxDepth', maxDepth, 1);
  integerAtLeast('maxAliasCount', maxAliasCount, 0);
  const text = decode(bytes, displayPath);
  if (format === 'json' && /^[ \t\n\r]*$/.test(text)) {
    // JSON has no empty document (YAML does: null). An empty .json file is most often one caught half-written.
    throw new ParseError('E_PARSE', { file: displayPath, line: 1, col: 1 }, 'the file is empty (not JSON: write {} or null)');
  }
  if (format === 'json') {
    // JSON.parse is the judge of strict JSON. The YAML tree (JSON is YAML) used to be built for every file, for
    // duplicate keys and positions, at ~100× the cost of JSON.parse. Now a linear check proves the common case
    // safe, and the tree is built only when that check has a doubt (it then raises the precise error with its
    // position) or when a validation error asks for a position.
    const value = parseStrictJson(text, displayPath);
    if (plainJsonIsSafe(text, value, maxDepth)) {
      let tree: ParsedConfig | undefined;
      const locate: ParsedConfig['locate'] = (pointer, opts) => {
        try {
          tree ??= parseTree(text, 'json', displayPath, { maxDepth, maxAliasCount }, value);
        } catch {
          return undefined; // JSON that yaml cannot read as YAML: no positions, the error still names the pointer
        }
        return tree.locate(pointer, opts);
      };
      const spans: ParsedConfig['spans'] = (pointer) => {
        try {
          tree ??= parseTree(text, 'json', displayPath, { maxDepth, maxAliasCount }, value);
        } catch {
          return undefined;
        }
        return tree.spans?.(pointer);
      };
      return { value, locate, spans };
    }
    return parseTree(text, format, displayPath, { maxDepth, maxAliasCount }, value);
  }
  return parseTree(text, format, displayPath, { maxDepth, maxAliasCount }, null);
}

/**
 * True when JSON text (already accepted by JSON.parse, which gave `value`) certainly holds no duplicate key, no
 * forbidden key and no nesting deeper than maxDepth. JSON.parse keeps the last of duplicate keys, so the keys
 * written in the text outnumber the own keys of the parsed objects exactly when some object repeats one.
 * False means "not proven": the caller then lets the YAML tree find the problem and its position.
 */
function plainJsonIsSafe(text: string, value: unknown, maxDepth: number): boolean {
  let ownKeys = 0;
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > maxDepth) return false;
    if (Array.isArray(v)) {
      for (const item of v as unknown[]) if (typeof item === 'object' && item !== null) stack.push({ v: item, depth: depth + 1 });
      continue;
    }
    const keys = Object.keys(v);
    ownKeys += keys.length;
    for (const key of keys) {
      if (FORBIDDEN_KEYS.has(key)) return false;
      const member = (v as Record<string, unknown>)[key];
      if (typeof member === 'object' && member !== null) stack.push({ v: member, depth: depth + 1 });
    }
  }
  // Count the keys written in the text: strings followed (after whitespace) by ':'. The text is valid JSON, so
  // every '"' outside a string opens one, and inside one only an unescaped '"' closes it.
  let written = 0;
  for (let i = text.indexOf('"'); i !== -1; ) {
    let end = text.indexOf('"', i + 1);
    while (end !== -1 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
    if (end === -1) return false;
    let j = end + 1;
    for (let c = text.charCodeAt(j); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++j));
    if (text.charCodeAt(j) === 0x3a) written++;
    i = text.indexOf('"', end + 1);
  }
  return written === ownKeys;
}

/** An odd number of backslashes right before `at`. */
function isEscaped(text: string, at: number): boolean {
  let n = 0;
  while (text.charCodeAt(at - 1 - n) === 0x5c) n++;
  return n % 2 === 1;
}

/** The YAML path: a Document with positions, every check of DESIGN.md point 9, then plain data. */
function parseTree(
  text: string,
  format: ConfigFormat,
  displayPath: string,
  limits: Required<ParseOptions>,
  jsonValue: unknown,
): ParsedConfig {
  const { maxDepth, maxAliasCount } = limits;
  const lines = new (yaml().LineCounter)();
  const fail: Fail = (code, offset, detail) => {
    const pos = offset === undefined ? undefined : lines.linePos(offset);
    return new ParseError(code, { file: displayPath, line: pos?.line, col: pos?.col }, detail);
  };
  const tooDeep = (offset?: number) => fail('E_DEPTH', offset, `nesting is too deep (limit ${maxDepth})`);

  const twice = secondYamlDirective(text);
  // Not fail(): the LineCounter only knows lines once yaml has parsed.
  if (twice !== undefined) throw new ParseError('E_PARSE', { file: displayPath, ...lineColAt(text, twice) }, 'the %YAML directive is given twice');

  let doc: Document.Parsed;
  try {
    doc = yaml().parseDocument(text, {
      lineCounter: lines,
      prettyErrors: false,
      schema: 'core',
      uniqueKeys: false, // yaml's check is O(keys²) per map (40,000 keys: 12 s); checkTree's is linear
      merge: true, // `<<: *defaults` is the usual config idiom; merged keys are checked where they are written
      resolveKnownTags: false, // !!binary, !!set, !!timestamp… would give Buffer, Set, Date: not plain data
      customTags: (tags) => [...tags, ...CORE_SCALAR_TAGS],
    });
  } catch (err) {
    throw err instanceof RangeError ? tooDeep() : fail('E_PARSE', undefined, 'cannot be parsed');
  }

  const [error] = doc.errors;
  if (error) {
    if (doc.errors.some((e) => e.code === 'RESOURCE_EXHAUSTION')) {
      // yaml caught a stack overflow and kept a truncated tree, in which our walk finds the first level too deep.
      try {
        checkTree(doc, { maxDepth, maxAliasCount }, fail);
      } catch (err) {
        if (err instanceof ParseError && err.code === 'E_DEPTH') throw err;
      }
      throw tooDeep(error.pos[0]);
    }
    if (error.code === 'MULTIPLE_DOCS') throw fail('E_PARSE', error.pos[0], 'only one document is allowed');
    if (error.code === 'TAG_RESOLVE_FAILED' && error.message.startsWith(CORE_TAG_PREFIX)) throw fail('E_TAG', error.pos[0], error.message);
    throw fail('E_PARSE', error.pos[0], yamlDetail(error));
  }
  const badTag = doc.warnings.find((w) => TAG_WARNINGS.has(w.code));
  if (badTag) {
    const name = tagName(badTag);
    const hint = name === 'a custom tag' ? "; a string that starts with '!' must be quoted" : '';
    throw fail('E_TAG', badTag.pos[0], `${name} is not allowed (only the YAML 1.2 core tags are${hint})`);
  }

  const aliasTargets = checkTree(doc, { maxDepth, maxAliasCount }, fail);
  let value: unknown = jsonValue;
  if (format === 'yaml') {
    try {
      value = doc.toJS({ maxAliasCount: -1 }); // counted exactly by checkTree; yaml's own count is per anchor
    } catch (err) {
      throw err instanceof RangeError ? tooDeep() : fail('E_PARSE', undefined, 'cannot be converted to plain data');
    }
  }
  checkPlain(value, fail);
  return {
    value,
    locate: (pointer, opts) => locateInTree(doc, aliasTargets, lines, pointer, opts?.key === true),
    spans: (pointer) => spansInTree(doc, aliasTargets, pointer),
  };
}

/**
 * Offset of a second `%YAML` directive before the document starts (YAML 1.2, 6.8.1: at most one per
 * document; yaml lets it pass), or undefined. Only the directive lines at the top are looked at.
 */
function secondYamlDirective(text: string): number | undefined {
  let seen = false;
  for (let at = 0; at < text.length; ) {
    const newline = text.indexOf('\n', at);
    const end = newline === -1 ? text.length : newline + 1;
    const line = text.slice(at, end);
    if (/^%YAML[ \t]/.test(line)) {
      if (seen) return at;
      seen = true;
    } else if (!/^(%|#|[ \t]*\r?\n?$)/.test(line)) {
      return undefined; // the document (or its `---`) starts
    }
    at = end;
  }
  return undefined;
}

/** Bytes -> text: strips a UTF-8 BOM, refuses invalid UTF-8 and C0 control characters other than \t \n \r. */
function decode(input: Buffer | string, file: string): string {
  let text: string;
  if (typeof input === 'string') {
    text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  } else {
    const bytes = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? input.subarray(3) : input;
    const utf16 = utf16Of(bytes);
    if (utf16) throw new ReadError('E_ENCODING', { file, line: 1, col: 1 }, `the file looks like UTF-16 (${utf16}): it must be UTF-8 text`);
    if (!isUtf8(bytes)) {
      const bad = firstInvalidUtf8(bytes);
      const lineStart = bad === 0 ? 0 : bytes.lastIndexOf(0x0a, bad - 1) + 1;
      const { line } = lineColAt(bytes.subarray(0, lineStart).toString('latin1'), lineStart);
      const col = bytes.subarray(lineStart, bad).toString('utf8').length + 1;
      throw new ReadError('E_ENCODING', { file, line, col }, 'invalid UTF-8 (the file must be UTF-8 text)');
    }
    text = bytes.toString('utf8');
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
      const hex = c.toString(16).toUpperCase().padStart(4, '0');
      throw new ReadError('E_ENCODING', { file, ...lineColAt(text, i) }, `control character U+${hex} is not allowed`);
    }
  }
  return text;
}

/**
 * How the bytes look like UTF-16 (endianness, byte order mark or not): a UTF-16 byte order mark, or, without
 * one, text whose first characters are mostly ASCII encoded on two bytes (a NUL beside each). Undefined otherwise.
 */
function utf16Of(b: Uint8Array): string | undefined {
  if (b[0] === 0xff && b[1] === 0xfe) return 'little-endian, with a byte order mark';
  if (b[0] === 0xfe && b[1] === 0xff) return 'big-endian, with a byte order mark';
  const pairs = Math.min(b.length >> 1, 32);
  if (pairs === 0) return undefined;
  let le = 0;
  let be = 0;
  for (let i = 0; i < pairs; i++) {
    const [x, y] = [b[2 * i]!, b[2 * i + 1]!];
    if (x !== 0 && x < 0x80 && y === 0) le++;
    else if (x === 0 && y !== 0 && y < 0x80) be++;
  }
  // Most characters of a config are ASCII: three in four pairs with a NUL on the same side is UTF-16.
  if (be === 0 && le * 4 >= pairs * 3) return 'little-endian, no byte order mark';
  if (le === 0 && be * 4 >= pairs * 3) return 'big-endian, no byte order mark';
  return undefined;
}

/** Offset of the first byte that starts a malformed UTF-8 sequence (RFC 3629), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n === -1) return i;
    // The second byte's range rules out overlongs (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** JSON.parse decides; its message is reduced to a position and a phrase, since V8 may quote the source. */
function parseStrictJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : '';
    let offset = jsonErrorOffset(message, text.length);
    if (offset === undefined) {
      // "Unexpected token 'x', "…" is not valid JSON" has no position: find the shortest failing prefix.
      // A prefix of valid JSON fails only at its very end, so the failing prefixes are exactly the longer ones.
      let [good, bad] = [0, text.length];
      while (bad - good > 1) {
        const mid = (good + bad) >>> 1;
        if (prefixFails(text.slice(0, mid))) bad = mid;
        else good = mid;
      }
      offset = bad - 1;
    }
    const phrase = /^(.*?)(?: in JSON)? at position \d+/.exec(message)?.[1];
    const detail = phrase ?? (message.startsWith('Unexpected end') ? 'Unexpected end of input' : 'Unexpected token');
    throw new ParseError('E_PARSE', { file, ...lineColAt(text, offset) }, `invalid JSON: ${detail}`);
  }
}

function jsonErrorOffset(message: string, length: number): number | undefined {
  const m = /at position (\d+)/.exec(message);
  if (m) return Number(m[1]);
  return message.startsWith('Unexpected end of JSON input') ? length : undefined;
}

function prefixFails(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return false;
  } catch (err) {
    const offset = jsonErrorOffset(err instanceof Error ? err.message : '', prefix.length);
    return offset === undefined || offset < prefix.length;
  }
}

// yaml messages that append or embed source text (which could be a secret), and what is kept of them.
const ECHOING_PREFIXES = [
  'Block scalar header includes extra characters',
  'Not a YAML token',
  'Anchor must not contain whitespace or control characters',
  'Not a valid tag',
  'Could not resolve tag',
  'Unresolved tag',
  'Expected a flow scalar value, but found',
];
// The `s` flag matters: an echoed secret may end in U+2028 or U+0085, which `.` does not match without it.
const ECHOING_MESSAGES: ReadonlyArray<readonly [RegExp, string]> = [
  [new RegExp(`^(${ECHOING_PREFIXES.join('|')}): .*$`, 's'), '$1'],
  [/^Invalid escape sequence .*$/s, 'Invalid escape sequence in a double-quoted string'],
  [/^Verbatim tags aren't resolved.*$/s, "Verbatim tags aren't resolved"],
  [/^The .* tag has no suffix$/s, 'A tag has no suffix'],
  [/^Unexpected \S{2,} in (flow map|flow sequence|collection)$/s, 'Unexpected token in $1'],
  [/^(Unsupported YAML version|Unknown directive) .*$/s, '$1'],
];

/** First line of yaml's message (never its code frame), without any part that may echo the source. */
function yamlDetail(e: YAMLError): string {
  let detail = e.message.split('\n')[0] ?? '';
  for (const [pattern, replacement] of ECHOING_MESSAGES) detail = detail.replace(pattern, replacement);
  return detail;
}

/**
 * The tag as shown in a message: only well-known type tags are named (`!!binary`, `!!js/function`,
 * `!!python/object`). Any other tag is text the user wrote, and an unquoted secret that starts with `!`
 * (`password: !Xk9#`) *is* a tag: it is never echoed.
 */
function tagName(w: YAMLError): string {
  const name = /Unresolved tag: (\S+)/.exec(w.message)?.[1]?.replace(/^tag:yaml\.org,2002:/, '!!') ?? '';
  const known = /^!!(binary|set|omap|pairs|timestamp|value|yaml|merge|(js|python|ruby|java|perl|php)\/[a-z_]+(\/[a-z_]+)*)(?=$|:)/.exec(name);
  return known ? known[0] : 'a custom tag';
}

/** The 1-based line and column of `offset` in `text`. */
function lineColAt(text: string, offset: number): Position {
  const lineStart = offset === 0 ? 0 : text.lastIndexOf('\n', offset - 1) + 1;
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < lineStart; i = text.indexOf('\n', i + 1)) line++;
  return { line, col: offset - lineStart + 1 };
}
