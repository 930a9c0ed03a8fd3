// The application's own check, the last stage before commit (DESIGN.md point 13): the candidate version (the live
// snapshot with the batch's valid changes applied) goes to a hook: the library's `check` option, or the daemon's
// `validate.command` over the candidate laid out as files. A refusal turns every change of the candidate into an
// `E_APP_CHECK` error, so the batch policy treats it as a schema error; what the hook says is bounded, escaped and
// never holds a secret's value.
import { AppCheckError } from '../errors.js';
import { escapeControl } from '../names.js';
import { valueAt } from '../pointer.js';
import type { ConfigEntry, SourceText } from '../store/index.js';
import { maskValues } from '../validate/index.js';
import type { Outcome } from './document.js';

/** One config of a candidate version. */
export interface CandidateEntry {
  readonly name: string;
  /** The validated value, deep-frozen. */
  readonly value: unknown;
  readonly hash: string;
  /** Where it came from (file path / source key). */
  readonly path: string;
  readonly secrets: readonly string[];
  /** The source's own file name (relative to its root) and exact text. */
  readonly source: SourceText | undefined;
}

/** The version a batch would commit: every config, as it would be. */
export interface Candidate {
  readonly configs: ReadonlyMap<string, CandidateEntry>;
  /** Names added or changed by this candidate, sorted. */
  readonly changed: readonly string[];
  /** Names this candidate removes, sorted. */
  readonly removed: readonly string[];
  get(name: string): unknown;
}

/**
 * The application's check of a candidate version, run after validation and before commit. Resolve with nothing
 * (or an empty list) to accept it; resolve with a list of problems, or throw, to refuse it: the configs it changes
 * keep their last good value and are looked at again with the next batch. It judges the whole tree, so a rule that
 * spans several configs belongs here. One check runs at a time; the pipeline waits for it.
 */
export type AppCheck = (candidate: Candidate) => void | readonly string[] | Promise<void | readonly string[]>;

/** Most characters of the check's own words kept in an error (the rest is counted). */
export const APP_CHECK_OUTPUT_CHARS = 4096;

/**
 * Runs `check` over the live configs with `outcomes` applied (`keepOnDelete`: removals keep the live value).
 * Returns the outcomes as they are when the check accepts or nothing changes, else with every change refused.
 */
export async function applyAppCheck(
  check: AppCheck,
  outcomes: readonly Outcome[],
  live: ReadonlyMap<string, ConfigEntry>,
  keepOnDelete: boolean,
): Promise<{ outcomes: readonly Outcome[]; refused: string | undefined; ran: boolean }> {
  const configs = new Map<string, CandidateEntry>();
  for (const [name, e] of live) configs.set(name, { name, value: e.value, hash: e.hash, path: e.path, secrets: e.secrets, source: e.source });
  const changed: string[] = [];
  const removed: string[] = [];
  for (const o of outcomes) {
    if (o.kind === 'ok' && live.get(o.name)?.hash !== o.hash) {
      changed.push(o.name);
      // Frozen now rather than at commit: a hook cannot change what it was asked to judge.
      configs.set(o.name, { name: o.name, value: freeze(o.value), hash: o.hash, path: o.path, secrets: o.secrets, source: o.source });
    } else if (o.kind === 'removed' && live.has(o.name) && !keepOnDelete) {
      removed.push(o.name);
      configs.delete(o.name);
    }
  }
  if (changed.length === 0 && removed.length === 0) return { outcomes, refused: undefined, ran: false };
  const candidate: Candidate = Object.freeze({
    configs,
    changed: Object.freeze(changed.sort()),
    removed: Object.freeze(removed.sort()),
    get: (name: string) => configs.get(name)?.value,
  });
  let problems: readonly string[];
  try {
    const said: unknown = await check(candidate);
    if (said === undefined || said === null) problems = [];
    else if (typeof said === 'string') problems = [said];
    else if (Array.isArray(said)) problems = said.map(String);
    else problems = [`the check returned ${typeof said}, not a list of problems (return nothing to accept)`];
  } catch (err) {
    problems = [err instanceof Error ? err.message : String(err)];
  }
  if (problems.length === 0) return { outcomes, refused: undefined, ran: true };
  const said = boundOutput(problems.join('\n'), secretValues([...configs.values(), ...live.values()]));
  const detail = `refused by the application check: ${said}`;
  const refuse = new Set([...changed, ...removed]);
  const shownOf = new Map(outcomes.map((o) => [o.name, o.kind === 'removed' ? undefined : o.shown]));
  const refusedOutcomes = outcomes.map((o): Outcome => {
    if (!refuse.has(o.name)) return o;
    const shown = shownOf.get(o.name);
    return { kind: 'error', name: o.name, shown, errors: [new AppCheckError('E_APP_CHECK', { file: shown ?? o.name }, detail)], retry: true };
  });
  return { outcomes: refusedOutcomes, refused: detail, ran: true };
}

/** Deep-freezes a parsed value (plain objects and arrays), as the store would at commit. */
function freeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || Object.isFrozen(v)) continue;
    Object.freeze(v);
    for (const child of Object.values(v)) stack.push(child);
  }
  return value;
}

/** The secret values of `entries` as they may appear in a check's output: strings and numbers, longest first. */
export function secretValues(entries: Iterable<{ readonly value: unknown; readonly secrets: readonly string[] }>): string[] {
  const found = new Set<string>();
  for (const e of entries) {
    for (const pointer of e.secrets) {
      const v = valueAt(e.value, pointer);
      if ((typeof v === 'string' && v !== '') || typeof v === 'number') found.add(String(v));
    }
  }
  return [...found].sort((a, b) => b.length - a.length);
}

/**
 * A check's words as they may be logged and served: every secret value replaced by `[REDACTED]` (before anything is
 * cut, so a value is never half shown), control characters escaped (one log line, no terminal escapes), then at
 * most {@link APP_CHECK_OUTPUT_CHARS} characters.
 */
export function boundOutput(text: string, secrets: readonly string[], maxChars = APP_CHECK_OUTPUT_CHARS): string {
  const out = escapeControl(maskValues(text.trim(), secrets));
  if (out.length <= maxChars) return out;
  return `${out.slice(0, maxChars)}… (${out.length - maxChars} more characters)`;
}
