// The recent versions behind GET /v1/history (the status page's version list): for each commit, which configs
// changed and how their values did, secrets redacted. Kept small and bounded: the last HISTORY_MAX_VERSIONS
// versions, each with at most HISTORY_MAX_CONFIGS configs of at most HISTORY_MAX_CHANGES value changes, each value
// shown as at most HISTORY_MAX_VALUE_CHARS characters of JSON; a diff walks at most HISTORY_MAX_NODES values.
import type { Hotconf } from '../hotconf.js';
import { valueAt } from '../pointer.js';
import type { Change, ConfigEntry, Unsubscribe } from '../store/index.js';
import { redact, REDACTED } from '../validate/index.js';

export const HISTORY_MAX_VERSIONS = 50;
export const HISTORY_MAX_CONFIGS = 100;
export const HISTORY_MAX_CHANGES = 50;
export const HISTORY_MAX_VALUE_CHARS = 200;
export const HISTORY_MAX_NODES = 100_000;

/** One value that changed: where, and what it was and became (JSON text, cut to HISTORY_MAX_VALUE_CHARS). */
export interface ValueChange {
  readonly pointer: string;
  readonly op: 'add' | 'remove' | 'replace';
  readonly from?: string;
  readonly to?: string;
}

export interface ConfigDiff {
  readonly name: string;
  /** The config's hash in this version; null when it was removed. */
  readonly hash: string | null;
  /** `added`: new in this version; `changed`; `removed`. */
  readonly kind: 'added' | 'changed' | 'removed';
  readonly changes: readonly ValueChange[];
  /** More changes than were kept (or the diff stopped at HISTORY_MAX_NODES values). */
  readonly truncated: boolean;
}

export interface VersionRecord {
  readonly version: number;
  /** The version it follows: several commits the store coalesced arrive as one record. */
  readonly from: number;
  /** When it was committed (ms since the epoch). */
  readonly at: number;
  readonly sourceRevision: string | null;
  readonly configs: readonly ConfigDiff[];
  /** Configs of this version past HISTORY_MAX_CONFIGS, counted, not shown. */
  readonly more: number;
}

/** Follows the store and keeps the last versions with their redacted diffs. */
export class VersionHistory {
  readonly #records: VersionRecord[] = [];
  readonly #unsubscribe: Unsubscribe;

  constructor(hot: Hotconf) {
    const snap = hot.snapshot();
    // What was live when the server started: its configs as added, so the page can say when each came.
    if (snap.version > 0) {
      const names = [...snap.configs.keys()].sort();
      this.#records.push({
        version: snap.version,
        from: 0,
        at: snap.committedAt,
        sourceRevision: snap.sourceRevision ?? null,
        configs: names.slice(0, HISTORY_MAX_CONFIGS).map((name) => ({ name, hash: snap.configs.get(name)!.hash, kind: 'added', changes: [], truncated: false })),
        more: Math.max(0, names.length - HISTORY_MAX_CONFIGS),
      });
    }
    this.#unsubscribe = hot.onConfigChange((change) => this.#record(change));
  }

  /** The newest `limit` versions, newest first. */
  recent(limit: number): readonly VersionRecord[] {
    return this.#records.slice(-limit).reverse();
  }

  close(): void {
    this.#unsubscribe();
  }

  #record(change: Change): void {
    const names = [...change.changed, ...change.removed];
    const configs = names.slice(0, HISTORY_MAX_CONFIGS).map((name): ConfigDiff => {
      const before = change.previous.configs.get(name);
      const after = change.current.configs.get(name);
      if (after === undefined) return { name, hash: null, kind: 'removed', changes: [], truncated: false };
      const { changes, truncated } = diffEntries(before, after);
      return { name, hash: after.hash, kind: before === undefined ? 'added' : 'changed', changes, truncated };
    });
    this.#records.push({
      version: change.version,
      from: change.previous.version,
      at: change.current.committedAt,
      sourceRevision: change.current.sourceRevision ?? null,
      configs,
      more: Math.max(0, names.length - HISTORY_MAX_CONFIGS),
    });
    if (this.#records.length > HISTORY_MAX_VERSIONS) this.#records.shift();
  }
}

/** The value changes from `before` to `after`, both redacted; a secret that changed shows as `[REDACTED]` both sides. */
export function diffEntries(before: ConfigEntry | undefined, after: ConfigEntry): { changes: ValueChange[]; truncated: boolean } {
  const out: ValueChange[] = [];
  const budget = { nodes: HISTORY_MAX_NODES, truncated: false };
  const a = before === undefined ? undefined : redact(before.value, before.secrets);
  const b = redact(after.value, after.secrets);
  walk(a, b, '', out, budget, before === undefined);
  // Redacted both sides, a changed secret looks unchanged: say that it changed (never what to).
  if (before !== undefined) {
    const shown = new Set(out.map((c) => c.pointer));
    for (const pointer of new Set([...before.secrets, ...after.secrets])) {
      if (shown.has(pointer) || out.length >= HISTORY_MAX_CHANGES) continue;
      const was = valueAt(before.value, pointer);
      const now = valueAt(after.value, pointer);
      if (was !== undefined && now !== undefined && !sameJson(was, now)) out.push({ pointer, op: 'replace', from: JSON.stringify(REDACTED), to: JSON.stringify(REDACTED) });
    }
  }
  out.sort((x, y) => (x.pointer < y.pointer ? -1 : x.pointer > y.pointer ? 1 : 0));
  return { changes: out.slice(0, HISTORY_MAX_CHANGES), truncated: budget.truncated || out.length > HISTORY_MAX_CHANGES };
}

function walk(a: unknown, b: unknown, pointer: string, out: ValueChange[], budget: { nodes: number; truncated: boolean }, isNew: boolean): void {
  if (out.length > HISTORY_MAX_CHANGES || budget.nodes-- <= 0) {
    budget.truncated = true;
    return;
  }
  if (isNew) {
    out.push({ pointer, op: 'add', to: shown(b) });
    return;
  }
  const objects = isPlainObject(a) && isPlainObject(b);
  const arrays = Array.isArray(a) && Array.isArray(b);
  if (objects || arrays) {
    const keys = arrays
      ? Array.from({ length: Math.max((a as unknown[]).length, (b as unknown[]).length) }, (_, i) => String(i))
      : [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
    for (const key of keys) {
      const child = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      const inA = Object.hasOwn(a as object, key);
      const inB = Object.hasOwn(b as object, key);
      const va = (a as Record<string, unknown>)[key];
      const vb = (b as Record<string, unknown>)[key];
      if (!inA) out.push({ pointer: child, op: 'add', to: shown(vb) });
      else if (!inB) out.push({ pointer: child, op: 'remove', from: shown(va) });
      else walk(va, vb, child, out, budget, false);
      if (out.length > HISTORY_MAX_CHANGES || budget.truncated) {
        budget.truncated = true;
        return;
      }
    }
    return;
  }
  if (!Object.is(a, b)) out.push({ pointer, op: 'replace', from: shown(a), to: shown(b) });
}

function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? 'null';
  return text.length > HISTORY_MAX_VALUE_CHARS ? `${text.slice(0, HISTORY_MAX_VALUE_CHARS)}…` : text;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
