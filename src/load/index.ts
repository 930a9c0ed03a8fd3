// The load stage: turns a path that the watcher (or a rescan) pointed at into a plain JS value. It reads the
// file asynchronously and accepts only bytes that were stable around the read, then parses YAML 1.2 or strict
// JSON, refusing hostile input (DESIGN.md point 9) before any value exists. The parsed config keeps its YAML
// tree so that validate can map a JSON pointer back to `file:line:col`.
import { isUtf8 } from 'node:buffer';
import { constants, type BigIntStats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Alias,
  type Document,
  type Node,
  type Pair,
  type YAMLError,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';
import { HotconfError, ParseError, ReadError, type HotconfErrorCode } from '../errors.js';
import type { ConfigFormat } from '../names.js';
import { parsePointer } from '../pointer.js';

// The format of a config is the naming rule's (names.ts); re-exported for the callers of parseConfig.
export { formatOf, type ConfigFormat } from '../names.js';

// ----------------------------------------------------------------------------------------------- identity

/** What identifies one version of a file on disk (from fs.stat with { bigint: true }, following symlinks). */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

const identityOf = ({ dev, ino, size, mtimeNs, ctimeNs }: BigIntStats): FileIdentity => ({
  dev,
  ino,
  size,
  mtimeNs,
  ctimeNs,
});

export function sameIdentity(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * stat (following symlinks). undefined when the path does not exist (ENOENT/ENOTDIR). Other errors (ELOOP,
 * EACCES…) throw ReadError with code E_READ naming the file and the OS code. A non-regular file still returns
 * its identity; callers check `isFile`.
 */
export async function statIdentity(file: string): Promise<(FileIdentity & { isFile: boolean }) | undefined> {
  let s: BigIntStats;
  try {
    s = await stat(file, { bigint: true });
  } catch (err) {
    if (osCode(err) === 'ENOENT' || osCode(err) === 'ENOTDIR') return undefined;
    throw osError(err, file);
  }
  return { ...identityOf(s), isFile: s.isFile() };
}

// ------------------------------------------------------------------------------------------------ reading

export interface ReadOptions {
  /** Largest file accepted, in bytes. Default 1 MiB (1_048_576). */
  maxFileBytes?: number;
  /** Most reads attempted (the first one included) while the file keeps changing under the read. Default 5. */
  maxAttempts?: number;
  /** Name used in error messages (e.g. 'config/app.yaml'); default: the path as given. */
  displayPath?: string;
  /** Aborts between attempts; the promise then rejects with `signal.reason`. Default: none. */
  signal?: AbortSignal;
}

export interface FileRead {
  readonly bytes: Buffer;
  readonly identity: FileIdentity;
  /** The read began within {@link RACY_WINDOW_MS} of the file's last change: look again after that window. */
  readonly racy: boolean;
  /** The path was renamed over or deleted while being read: the bytes are a whole, earlier version. Look again. */
  readonly superseded: boolean;
}

const READ_CHUNK_BYTES = 64 * 1024;
/**
 * File timestamps come from the kernel's coarse clock (a tick is at most 10 ms on Linux; kernels with
 * multigrain timestamps do better). A write in the same tick as our read can leave the identity unchanged,
 * so a read that began less than this window after the file's last change proves nothing on its own (git's
 * "racy" rule). Such a read is returned at once, marked `racy`: the caller commits it without delay and looks
 * at the file again once the window has passed.
 */
export const RACY_WINDOW_MS = 12;

/** Reads the whole file such that its identity was the same before and after the read. */
export async function readStable(file: string, options: ReadOptions = {}): Promise<FileRead> {
  const { maxFileBytes = 1_048_576, maxAttempts = 5, displayPath = file, signal } = options;
  integerAtLeast('maxFileBytes', maxFileBytes, 1);
  integerAtLeast('maxAttempts', maxAttempts, 1);
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const startedMs = Date.now();
    const read = await readOnce(file, maxFileBytes, displayPath);
    if (read) {
      const changedMs = Number(read.identity.ctimeNs / 1_000_000n);
      return { ...read, racy: startedMs - changedMs <= RACY_WINDOW_MS };
    }
    if (attempt >= maxAttempts) {
      const detail = `kept changing while being read (${maxAttempts} attempts)`;
      throw new ReadError('E_UNSTABLE', { file: displayPath }, detail);
    }
    try {
      await delay(Math.min(2 ** attempt, 10), undefined, signal ? { signal } : undefined);
    } catch (err) {
      throw signal?.aborted ? signal.reason : err;
    }
  }
}

/** One read; undefined when the file was written in place while it was being read. */
async function readOnce(file: string, maxFileBytes: number, displayPath: string): Promise<Omit<FileRead, 'racy'> | undefined> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO that has no writer must not hang; fstat refuses it right after.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw osError(err, displayPath);
  }
  try {
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) {
      throw new ReadError('E_NOT_FILE', { file: displayPath }, `is not a regular file (${kindOf(before)})`);
    }
    if (before.size > BigInt(maxFileBytes)) throw tooLarge(displayPath, maxFileBytes, `${before.size} bytes`);
    const bytes = await readUpTo(fh, maxFileBytes + 1); // one byte more tells a file that grew past the limit
    if (bytes.length > maxFileBytes) throw tooLarge(displayPath, maxFileBytes, `at least ${bytes.length} bytes`);
    // The usual case in one call: the path still names the inode we read, whose identity did not move during
    // the read (same dev, ino, size, mtime, ctime): the bytes are whole and current.
    const first = identityOf(before);
    const now = await stat(file, { bigint: true }).then(identityOf, () => undefined);
    if (sameIdentity(first, now) && BigInt(bytes.length) === first.size) return { bytes, identity: first, superseded: false };
    const after = identityOf(await fh.stat({ bigint: true }));
    // Written in place during the read: the bytes may be torn. Read again.
    if (!sameIdentity(identityOf(before), after) || BigInt(bytes.length) !== after.size) return undefined;
    // Replaced (renamed over, or deleted) during the read: what we hold is a whole earlier version, read
    // from its own inode. Keep it, and say that the path has moved on.
    return { bytes, identity: after, superseded: !sameIdentity(after, now) };
  } catch (err) {
    throw err instanceof HotconfError ? err : osError(err, displayPath);
  } finally {
    await fh.close();
  }
}

async function readUpTo(fh: FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < limit) {
    const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, limit - total));
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, total);
    chunks.push(chunk.subarray(0, bytesRead));
    total += bytesRead;
    // A regular file reads short only at its end: no second call to learn that. Growth after this read
    // shows in the fstat that follows it.
    if (bytesRead < chunk.length) break;
  }
  return Buffer.concat(chunks, total);
}

const tooLarge = (file: string, max: number, size: string) =>
  new ReadError('E_TOO_LARGE', { file }, `is too large: ${size}, over the limit of ${max} bytes`);

const kindOf = (s: BigIntStats) =>
  s.isDirectory() ? 'a directory' : s.isFIFO() ? 'a FIFO' : s.isSocket() ? 'a socket' : 'a device';

const osCode = (err: unknown): string | undefined =>
  err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;

/** An OS error as a ReadError: the OS code and libuv's description, never Node's message with the real path. */
function osError(err: unknown, file: string): ReadError {
  const code = osCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ReadError('E_NOT_FOUND', { file }, 'not found', { cause: err });
  }
  if (code === 'EISDIR' || code === 'ENXIO') {
    return new ReadError('E_NOT_FILE', { file }, `is not a regular file (${code})`, { cause: err });
  }
  const description = err instanceof Error ? /^[A-Z0-9]+: ([^,]+)/.exec(err.message)?.[1] : undefined;
  const what = code === undefined ? 'unknown error' : description ? `${code} (${description})` : code;
  return new ReadError('E_READ', { file }, `cannot read: ${what}`, { cause: err });
}

// ------------------------------------------------------------------------------------------------ parsing

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
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// yaml reports these as warnings; for a config they mean "this would not be plain data".
const TAG_WARNINGS = new Set(['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE']);

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
  if (format === 'json' && !/^[ \t\n\r]*$/.test(text)) {
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
      return { value, locate };
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
  const lines = new LineCounter();
  const fail: Fail = (code, offset, detail) => {
    const pos = offset === undefined ? undefined : lines.linePos(offset);
    return new ParseError(code, { file: displayPath, line: pos?.line, col: pos?.col }, detail);
  };
  const tooDeep = (offset?: number) => fail('E_DEPTH', offset, `nesting is too deep (limit ${maxDepth})`);

  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, {
      lineCounter: lines,
      prettyErrors: false,
      schema: 'core',
      uniqueKeys: false, // yaml's check is O(keys²) per map (40,000 keys: 12 s); checkTree's is linear
      merge: true, // `<<: *defaults` is the usual config idiom; merged keys are checked where they are written
      resolveKnownTags: false, // !!binary, !!set, !!timestamp… would give Buffer, Set, Date: not plain data
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
  return { value, locate: (pointer, opts) => locate(doc, aliasTargets, lines, pointer, opts?.key === true) };
}

/** Bytes -> text: strips a UTF-8 BOM, refuses invalid UTF-8 and C0 control characters other than \t \n \r. */
function decode(input: Buffer | string, file: string): string {
  let text: string;
  if (typeof input === 'string') {
    text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  } else {
    const bytes = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? input.subarray(3) : input;
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

type Fail = (code: HotconfErrorCode, offset: number | undefined, detail: string) => ParseError;
interface Frame {
  readonly node: YAMLMap<unknown, unknown> | YAMLSeq<unknown>;
  readonly depth: number;
  readonly parent: Frame | undefined;
  /** The value of a merge key (`<<`): the entries of its map(s) land in the map that holds the `<<`. */
  readonly merge: boolean;
  /** Levels of collections from this one down, aliases included (1 for a collection of scalars). */
  height: number;
  /** Alias dereferences inside, counting those that the aliases bring in. */
  derefs: number;
}
type Task =
  | {
      readonly kind: 'node';
      readonly node: unknown;
      readonly parent: Frame | undefined;
      /** The value of a `<<` key. */
      readonly merge?: boolean;
      /** Adds no level: the value of a `<<` key, or an item of a `<<` list. */
      readonly flat?: boolean;
    }
  | { readonly kind: 'pair'; readonly pair: Pair<unknown, unknown>; readonly parent: Frame }
  | { readonly kind: 'exit'; readonly frame: Frame };

/**
 * One iterative pass over the tree in document order (no recursion: a 10,000-deep file must not overflow the
 * stack). Refuses nesting deeper than maxDepth and more than maxAliasCount alias dereferences, both counting
 * what aliases bring in; duplicate and forbidden keys; keys that are not scalars or that collide once
 * stringified (`1` and `"1"`); unknown and cyclic aliases; merges of non-maps. Returns what each alias refers
 * to, for `locate`.
 */
function checkTree(doc: Document.Parsed, limits: Required<ParseOptions>, fail: Fail): Map<Alias, Node> {
  const { maxDepth, maxAliasCount } = limits;
  const tooDeep = (node: unknown) => fail('E_DEPTH', nodeStart(node), `nesting is too deep (limit ${maxDepth})`);
  const anchors = new Map<string, Node>();
  // Of anchored nodes, once walked: levels (collections only) and alias dereferences inside.
  const heights = new Map<Node, number>();
  const derefs = new Map<Node, number>();
  let totalDerefs = 0;
  const open = new Set<Node>(); // anchored collections being walked: an alias to one would be a cycle
  const aliasTargets = new Map<Alias, Node>();
  const raise = (frame: Frame | undefined, height: number) => {
    if (frame) frame.height = Math.max(frame.height, height + 1);
  };
  const stack: Task[] = [{ kind: 'node', node: doc.contents, parent: undefined }];
  for (let task = stack.pop(); task !== undefined; task = stack.pop()) {
    if (task.kind === 'exit') {
      const { node, height, parent, merge } = task.frame;
      if (node.anchor) {
        heights.set(node, height);
        derefs.set(node, task.frame.derefs);
      }
      open.delete(node);
      raise(parent, height - (merge ? (isSeq(node) ? 2 : 1) : 0));
      if (parent) parent.derefs += task.frame.derefs;
    } else if (task.kind === 'pair') {
      const { key, value } = task.pair;
      if (!isScalar(key)) {
        throw fail('E_PARSE', nodeStart(key) ?? nodeStart(task.parent.node), 'map keys must be scalars');
      }
      if (key.anchor) anchors.set(key.anchor, key);
      const merge = typeof key.value === 'symbol'; // how yaml marks `<<` when merge keys are on
      if (merge) checkMergeSources(value, anchors, fail);
      stack.push({ kind: 'node', node: value, parent: task.parent, merge, flat: merge });
    } else if (isAlias(task.node)) {
      const alias = task.node;
      const target = anchors.get(alias.source);
      // The alias's name is not quoted: an unquoted secret that starts with `*` is an alias.
      if (!target) throw fail('E_PARSE', nodeStart(alias), "an alias has no anchor before it (a string that starts with '*' must be quoted)");
      if (open.has(target)) {
        throw fail('E_PARSE', nodeStart(alias), 'an alias is inside what it refers to');
      }
      aliasTargets.set(alias, target);
      const brought = 1 + (derefs.get(target) ?? 0);
      totalDerefs += brought;
      if (totalDerefs > maxAliasCount) {
        const detail = `too many alias dereferences (limit ${maxAliasCount}): possibly a "billion laughs" document`;
        throw fail('E_ALIAS_LIMIT', nodeStart(alias), detail);
      }
      if (task.parent) task.parent.derefs += brought;
      const height = heights.get(target) ?? 0;
      if ((task.parent?.depth ?? 0) + height - (task.flat ? 1 : 0) > maxDepth) throw tooDeep(alias);
      raise(task.parent, height - (task.merge ? 1 : 0));
    } else if (isMap(task.node) || isSeq(task.node)) {
      const node = task.node;
      const merge = task.merge === true;
      const depth = (task.parent?.depth ?? 0) + (task.flat ? 0 : 1);
      const frame: Frame = { node, depth, parent: task.parent, merge, height: 1, derefs: 0 };
      if (frame.depth > maxDepth) throw tooDeep(node);
      if (node.anchor) {
        anchors.set(node.anchor, node);
        open.add(node);
      }
      stack.push({ kind: 'exit', frame });
      if (isMap(node)) {
        checkKeys(node, fail);
        for (const pair of node.items.toReversed()) stack.push({ kind: 'pair', pair, parent: frame });
      } else {
        // The items of a `<<` list are merge sources too: they add no level.
        for (const item of node.items.toReversed()) {
          stack.push({ kind: 'node', node: item, parent: frame, flat: merge });
        }
      }
    } else if (isScalar(task.node) && task.node.anchor) {
      anchors.set(task.node.anchor, task.node);
    }
  }
  return aliasTargets;
}

/** Forbidden and duplicate keys of one map, compared as the property names they become (`1` and `"1"` collide). */
function checkKeys(map: YAMLMap<unknown, unknown>, fail: Fail): void {
  const seen = new Set<string>();
  for (const { key } of map.items) {
    if (!isScalar(key) || typeof key.value === 'symbol') continue;
    const name = jsKey(key.value);
    if (FORBIDDEN_KEYS.has(name)) throw fail('E_FORBIDDEN_KEY', nodeStart(key), `key "${name}" is not allowed`);
    if (seen.has(name)) throw fail('E_DUPLICATE_KEY', nodeStart(key), 'duplicate key');
    seen.add(name);
  }
}

function checkMergeSources(value: unknown, anchors: Map<string, Node>, fail: Fail): void {
  for (const source of isSeq(value) ? value.items : [value]) {
    if (!isMap(isAlias(source) ? anchors.get(source.source) : source)) {
      throw fail('E_PARSE', nodeStart(source), 'a merge (<<) value must be a map, an alias to one, or a list of those');
    }
  }
}

/** Defence in depth on the final value: plain data only, and no forbidden key however it got there. */
function checkPlain(value: unknown, fail: Fail): void {
  const seen = new Set<object>(); // aliases share objects: visit each once
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') continue;
    if (typeof v !== 'object') throw fail('E_PARSE', undefined, `unsupported value of type ${typeof v}`);
    if (seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v)) {
      for (const item of v as unknown[]) stack.push(item); // not push(...v): 500,000 arguments overflow
    } else if (Object.getPrototypeOf(v) !== Object.prototype) {
      throw fail('E_PARSE', undefined, 'unsupported value: not plain data');
    } else {
      for (const [key, member] of Object.entries(v)) {
        if (FORBIDDEN_KEYS.has(key)) throw fail('E_FORBIDDEN_KEY', undefined, `key "${key}" is not allowed`);
        stack.push(member);
      }
    }
  }
}

/** The property name a scalar key becomes, as yaml's toJS makes it. */
function jsKey(value: unknown): string {
  if (typeof value === 'string') return value;
  return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : '';
}

const nodeStart = (node: unknown): number | undefined =>
  isAlias(node) || isScalar(node) || isMap(node) || isSeq(node) ? node.range?.[0] : undefined;

function locate(
  doc: Document.Parsed,
  aliasTargets: Map<Alias, Node>,
  lines: LineCounter,
  pointer: string,
  key: boolean,
): Position | undefined {
  const segments = parsePointer(pointer);
  if (segments === undefined) return undefined;
  const resolve = (n: unknown): unknown => (isAlias(n) ? aliasTargets.get(n) : n);
  let node = resolve(doc.contents);
  let best = nodeStart(doc.contents) ?? 0; // an empty document: 1:1
  for (const [i, segment] of segments.entries()) {
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = findPair(node, segment, resolve);
      [next, keyNode] = [pair?.value, pair?.key];
    } else if (isSeq(node) && /^(0|[1-9]\d*)$/.test(segment)) {
      next = node.items[Number(segment)];
    }
    const wantKey = key && i === segments.length - 1 && keyNode !== undefined;
    const start = nodeStart(wantKey ? keyNode : next) ?? nodeStart(keyNode); // `a:` with no value: its key
    if (start === undefined) break;
    best = start;
    node = resolve(next);
  }
  return lines.linePos(best);
}

/** The pair for `name`, in yaml's merge order: the map's own keys, then each merged map (depth first). */
function findPair(map: YAMLMap<unknown, unknown>, name: string, resolve: (n: unknown) => unknown) {
  const maps: unknown[] = [map];
  for (let m = maps.pop(); m !== undefined; m = maps.pop()) {
    if (!isMap(m)) continue;
    const merged: unknown[] = [];
    for (const pair of m.items) {
      if (!isScalar(pair.key)) continue;
      if (typeof pair.key.value === 'symbol') merged.push(isSeq(pair.value) ? pair.value.items : [pair.value]);
      else if (jsKey(pair.key.value) === name) return pair;
    }
    for (const source of merged.flat().reverse()) maps.push(resolve(source));
  }
  return undefined;
}

// ------------------------------------------------------------------------------------------------ helpers

function integerAtLeast(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new HotconfError('E_OPTIONS', `${name} must be an integer >= ${min}, got ${value}`);
  }
}

function lineColAt(text: string, offset: number): Position {
  const lineStart = offset === 0 ? 0 : text.lastIndexOf('\n', offset - 1) + 1;
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < lineStart; i = text.indexOf('\n', i + 1)) line++;
  return { line, col: offset - lineStart + 1 };
}
