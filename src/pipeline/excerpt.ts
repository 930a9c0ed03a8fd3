// The lines of a refused document around its errors' positions, for people (the status page): a few lines per
// error, each cut to a bounded length, secrets masked by schema. Computed once, when a document is refused, from
// the bytes in hand; kept with the config's problem. Nothing here runs for a valid document.
import type { ConfigError } from '../errors.js';
import type { Position } from '../load/index.js';
import { maskValues, REDACTED } from '../validate/index.js';

/** Lines shown before and after an error's line. */
export const EXCERPT_CONTEXT_LINES = 3;
/** Longest line shown, in characters; the rest is cut (`…`). */
export const EXCERPT_MAX_LINE_CHARS = 240;
/** Most excerpts kept per config (errors on nearby lines share one). */
export const EXCERPT_MAX = 5;
/** A refused document with more secret values than this is not excerpted (each is located, at a cost). */
export const EXCERPT_MAX_SECRETS = 1000;
/** Most lines kept per config, all excerpts together (errors on many nearby lines make one long excerpt). */
export const EXCERPT_MAX_LINES = 60;

/** Lines `line` … `line + lines.length - 1` (1-based) of a refused document. */
export interface SourceExcerpt {
  readonly line: number;
  readonly lines: readonly string[];
}

/** A refused config's excerpts, or why there are none. */
export type SourceExcerpts = { readonly excerpts: readonly SourceExcerpt[] } | { readonly withheld: string };

/** What the pipeline knows of a refused document's secrets: where they are, and their values. */
export interface SecretMarks {
  /** Where each secret value starts (its line, from its column on, is masked). */
  readonly positions: readonly Position[];
  /** The secret values (leaves of objects and arrays included): masked wherever they appear. */
  readonly values: readonly unknown[];
}

/** Excerpts of `text` around the positions of `errors`, with `marks` masked. */
export function excerptsOf(text: string, errors: readonly ConfigError[], marks: SecretMarks): SourceExcerpts {
  const wanted = [...new Set(errors.map((e) => e.line).filter((l): l is number => l !== undefined && l >= 1))].sort((a, b) => a - b);
  if (wanted.length === 0) return { excerpts: [] };
  const all = text.split(/\r?\n|\r/);
  if (all.length > 1 && all.at(-1) === '') all.pop(); // the end of the last line, not a line
  const ranges: Array<[number, number]> = [];
  for (const line of wanted) {
    const from = Math.max(1, line - EXCERPT_CONTEXT_LINES);
    const to = Math.min(all.length, line + EXCERPT_CONTEXT_LINES);
    const last = ranges.at(-1);
    if (last !== undefined && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else if (ranges.length < EXCERPT_MAX) ranges.push([from, to]);
  }
  let budget = EXCERPT_MAX_LINES;
  for (const r of ranges) {
    r[1] = Math.min(r[1], r[0] + budget - 1);
    budget -= r[1] - r[0] + 1;
  }
  while (ranges.length > 0 && ranges.at(-1)![1] < ranges.at(-1)![0]) ranges.pop();
  const masked = maskedColumns(all, marks.positions, ranges.at(-1)?.[1] ?? 0);
  // Only the secrets written somewhere in the lines shown are looked for line by line.
  const shownText = ranges.map(([from, to]) => all.slice(from - 1, to).join('\n')).join('\n');
  const needles = secretNeedles(marks.values).filter((n) => shownText.includes(n));
  const excerpts = ranges.map(([from, to]) => ({
    line: from,
    lines: all.slice(from - 1, to).map((text, i) => {
      const col = masked.get(from + i);
      const shown = maskValues(col === undefined ? text : text.slice(0, col - 1) + REDACTED, needles);
      return shown.length > EXCERPT_MAX_LINE_CHARS ? `${shown.slice(0, EXCERPT_MAX_LINE_CHARS)}…` : shown;
    }),
  }));
  return { excerpts };
}

/**
 * Line → the column from which it is masked, up to `lastLine`: a secret's line from where its value starts, and
 * the lines that continue it (a YAML block or multi-line scalar, a JSON object or array laid out over lines): the
 * ones below it indented more than its line (or, for a value that starts its line, as much), up to the first that
 * is not. One pass over the lines, whatever the number of secrets: the open secrets are kept as their distinct
 * indentation floors.
 */
function maskedColumns(lines: readonly string[], positions: readonly Position[], lastLine: number): Map<number, number> {
  const masked = new Map<number, number>();
  const starts = new Map<number, number[]>();
  for (const p of positions) if (p.line <= lastLine) starts.set(p.line, [...(starts.get(p.line) ?? []), p.col]);
  const indent = (t: string) => t.length - t.trimStart().length;
  const floors = new Set<number>();
  for (let n = 1; n <= Math.min(lastLine, lines.length); n++) {
    const t = lines[n - 1]!;
    if (t.trim() !== '' && floors.size > 0) {
      const own = indent(t);
      for (const f of floors) if (own < f) floors.delete(f);
      if (floors.size > 0) masked.set(n, own + 1);
    }
    for (const col of starts.get(n) ?? []) {
      masked.set(n, Math.min(masked.get(n) ?? Infinity, col));
      floors.add(t.slice(0, col - 1).trim() === '' ? indent(t) : indent(t) + 1);
    }
  }
  return masked;
}

/** The texts a secret may be written as: each leaf as written plain and JSON-escaped, and each line of a multi-line one. */
function secretNeedles(values: readonly unknown[]): string[] {
  const out = new Set<string>();
  const add = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) add(x);
    else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) add(x);
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
      const text = String(v);
      for (const t of [text, JSON.stringify(text).slice(1, -1), ...text.split(/\r?\n/)]) if (t.trim() !== '') out.add(t);
    }
  };
  for (const v of values) add(v);
  // Longest first: a secret that contains another is masked whole.
  return [...out].sort((a, b) => b.length - a.length);
}
