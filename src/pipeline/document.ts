// One document, one path: bytes → parse (with positions and the hostile-input limits) → validate (JSON Schema)
// → a value and its hash, or the errors that refuse it. Every source's entries, `checkConfigs` and
// `validateOnce` go through here, so a config means the same wherever it comes from.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { ConfigError, ReadError } from '../errors.js';
import path from 'node:path';
import type { ParsedConfig } from '../load/index.js';
import type { ConfigParser } from '../load/worker.js';
import type { ConfigFormat } from '../names.js';
import { valueAt } from '../pointer.js';
import type { EntryRead, ReadLimits } from '../source/index.js';
import type { SourceText } from '../store/index.js';
import { redact, type SchemaRegistry, type ValidationResult } from '../validate/index.js';
import { EXCERPT_MAX_SECRETS, excerptsOf, type SourceExcerpts } from './excerpt.js';

/** The stages a document goes through, and their limits. */
export interface DocumentStages {
  readonly parser: ConfigParser;
  readonly registry: SchemaRegistry;
  /** Deepest nesting and most YAML alias dereferences accepted. */
  readonly maxDepth: number;
  readonly maxAliasCount: number;
  /** A config without a schema is an error. */
  readonly requireSchema: boolean;
}

/** What one config name came to in a batch. */
export type Outcome =
  | { kind: 'ok'; name: string; path: string; shown: string; value: unknown; hash: string; secrets: readonly string[]; source?: SourceText }
  /** `retry`: looked at again with the next batch whatever the policy (an application check's refusal). */
  | { kind: 'error'; name: string; shown: string | undefined; errors: readonly ConfigError[]; retry?: boolean; excerpts?: SourceExcerpts }
  | { kind: 'removed'; name: string }
  /** Written in place faster than it could be read whole: not an error, just not yet; looked at again. */
  | { kind: 'unsettled'; name: string; shown: string };

/**
 * Parses and validates `bytes` as config `name` (`shown` in messages). Given `value`, that value is validated
 * instead of the parsed one (the bytes then only give positions). Rejects with a ConfigError when the bytes
 * cannot be parsed; resolves with the validation's verdict otherwise.
 */
export async function validateDocument(
  name: string,
  bytes: Uint8Array,
  format: ConfigFormat,
  shown: string,
  stages: DocumentStages,
  value?: { readonly value: unknown },
): Promise<ValidationResult> {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parsed = await stages.parser.parse(buf, format, shown, { maxDepth: stages.maxDepth, maxAliasCount: stages.maxAliasCount });
  return stages.registry.validateAsync(name, value ? value.value : parsed.value, parsed, shown, stages.requireSchema);
}

/**
 * What a source's read of `name` comes to: a valid value with its hash, or why not. With `keepSource`, a valid
 * outcome keeps the source's text (for an application check and `publish.format: source`), and its hash covers
 * that text too: an edit of comments or layout is then a new version, since what is handed on changed. With
 * `excerpt`, a refused document keeps the lines around its errors (excerpt.ts); `live()`: the secret values of the
 * config's last good value, masked there too (asked only for a refused document).
 */
export async function outcomeOf(
  name: string,
  read: EntryRead,
  stages: DocumentStages,
  limits: ReadLimits,
  keepSource = false,
  excerpt?: { live(): readonly string[] },
): Promise<Outcome> {
  switch (read.kind) {
    case 'missing':
      return { kind: 'removed', name };
    case 'error':
      return { kind: 'error', name, shown: read.shown, errors: read.errors };
    case 'unsettled':
      return { kind: 'unsettled', name, shown: read.shown };
  }
  if (read.bytes.byteLength > limits.maxFileBytes) {
    const err = new ReadError('E_TOO_LARGE', { file: read.shown }, `is too large: ${read.bytes.byteLength} bytes, over the limit of ${limits.maxFileBytes} bytes`);
    return { kind: 'error', name, shown: read.shown, errors: [err] };
  }
  const size = read.bytes.byteLength;
  /** The bytes as text, while this thread still has them (a parse off-thread moves them away). */
  const textNow = () => (read.bytes.byteLength === size ? Buffer.from(read.bytes.buffer, read.bytes.byteOffset, size).toString('utf8') : undefined);
  let parsed: ParsedConfig | undefined;
  try {
    // Decoded before the parse, which may move the bytes to its worker thread. A document that is not valid
    // UTF-8 is refused by the parse (E_ENCODING), so a kept text always gives back the exact bytes.
    const text = keepSource ? textNow() : undefined;
    const buf = Buffer.isBuffer(read.bytes) ? read.bytes : Buffer.from(read.bytes.buffer, read.bytes.byteOffset, size);
    parsed = await stages.parser.parse(buf, read.format, read.shown, { maxDepth: stages.maxDepth, maxAliasCount: stages.maxAliasCount });
    const result = await stages.registry.validateAsync(name, parsed.value, parsed, read.shown, stages.requireSchema);
    if (!result.ok) {
      const refused = { kind: 'error', name, shown: read.shown, errors: result.errors } as const;
      return excerpt === undefined ? refused : { ...refused, excerpts: refusedExcerpts(name, textNow(), result.errors, stages, excerpt.live(), parsed) };
    }
    // The secret pointers are part of the hash: a schema change that makes a field secret is a change to
    // what may be shown, even when the value is the same.
    const hash = contentHash(result.value, result.secrets, text);
    const ok = { kind: 'ok', name, path: read.path, shown: read.shown, value: result.value, hash, secrets: result.secrets } as const;
    return text === undefined ? ok : { ...ok, source: { file: name + path.posix.extname(read.path), text } };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const refused = { kind: 'error', name, shown: read.shown, errors: [err] } as const;
    return excerpt === undefined ? refused : { ...refused, excerpts: refusedExcerpts(name, textNow(), [err], stages, excerpt.live(), parsed) };
  }
}

/** The lines of a refused document around its errors, its secrets masked; withheld when they cannot be found. */
function refusedExcerpts(
  name: string,
  text: string | undefined,
  errors: readonly ConfigError[],
  stages: DocumentStages,
  live: readonly string[],
  parsed: ParsedConfig | undefined,
): SourceExcerpts {
  if (!errors.some((e) => e.line !== undefined)) return { excerpts: [] };
  if (text === undefined) return { withheld: `documents over ${stages.parser.workerThresholdBytes} bytes are not excerpted` };
  if (parsed === undefined) {
    // Not parsed: nothing tells where its secrets are.
    if (stages.registry.marksSecrets(name)) return { withheld: 'the document could not be parsed and its schema marks secrets: its lines are not shown' };
    return excerptsOf(text, errors, { positions: [], values: live });
  }
  const secrets = stages.registry.secretsFor(name, parsed.value);
  if (secrets === undefined) return { withheld: 'its schema cannot tell where its secrets are: its lines are not shown' };
  // Each secret is located in the document: bounded, since a position costs up to the size of its map.
  if (secrets.length > EXCERPT_MAX_SECRETS) return { withheld: `it holds more than ${EXCERPT_MAX_SECRETS} secret values: its lines are not shown` };
  const positions = secrets.map((p) => parsed.locate(p)).filter((p) => p !== undefined);
  return excerptsOf(text, errors, { positions, values: [...live, ...secrets.map((p) => valueAt(parsed.value, p))] });
}

/**
 * sha256 of the value's canonical JSON (keys sorted), so formatting and comments do not change it, plus the
 * pointers of its secrets. The hash is public (ETag, SSE, webhooks), so secret values enter it only through an
 * HMAC under a key that never leaves this process: a served hash cannot be used to guess a weak password. The
 * price: the hash of a config with secrets differs between processes (fleets compare `sourceRevision`).
 */
export function contentHash(value: unknown, secrets: readonly string[] = [], text?: string): string {
  // A kept source text enters the hash too (plainly when nothing is secret, through the HMAC otherwise: it holds
  // the secrets' values as well).
  if (text !== undefined) {
    const textHash = secrets.length === 0 ? createHash('sha256').update(text).digest('hex') : createHmac('sha256', SECRET_HASH_KEY).update(text).digest('hex');
    return createHash('sha256').update(contentHash(value, secrets)).update(`\0source:${textHash}`).digest('hex');
  }
  if (secrets.length === 0) return createHash('sha256').update(canonicalJson(value)).digest('hex');
  const hidden = createHmac('sha256', SECRET_HASH_KEY).update(canonicalJson(secrets.map((p) => valueAt(value, p)))).digest('hex');
  return createHash('sha256')
    .update(canonicalJson(redact(value, secrets)))
    .update(`\0secrets:${secrets.join('\0')}\0${hidden}`)
    .digest('hex');
}

const SECRET_HASH_KEY = randomBytes(32);

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return `"${String(value)}"`;
  return JSON.stringify(value) ?? 'null';
}
