// The recent versions behind GET /v1/history (the status page's version list): for each commit, which configs
// changed and how their values did, secrets redacted. Kept small and bounded: the last HISTORY_MAX_VERSIONS
// versions, each with at most HISTORY_MAX_CONFIGS configs of at most HISTORY_MAX_CHANGES value changes, each value
// shown as at most HISTORY_MAX_VALUE_CHARS characters of JSON; a diff walks at most HISTORY_MAX_NODES values.
import type { Hotconf } from '../hotconf.js';
import type { Change, ConfigEntry, Unsubscribe } from '../store/index.js';
import { redact, REDACTED } from '../validate/index.js';

export const HISTORY_MAX_VERSIONS = 50;
export const HISTORY_MAX_CONFIGS = 100;
export const HISTORY_MAX_CHANGES = 50;
export const HISTORY_MAX_VALUE_CHARS = 200;
export const HISTORY_MAX_NODES = 50_000;

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
  /** The etcd fleet release it serves; null outside release mode. */
  readonly release: number | null;
  readonly configs: readonly ConfigDiff[];
  /** Configs of this version past HISTORY_MAX_CONFIGS, counted, not shown. */
  readonly more: number;
}

/** Follows the store and keeps the last versions with their redacted diffs. */
export class VersionHistory {
  readonly #records: VersionRecord[] = [];
  readonly #unsubscribe: Unsubscribe;
  /** Changes heard but not yet diffed: the diff runs after the store's other subscribers (the event stream first). */
  #pending: Change[] = [];
  #scheduled: NodeJS.Immediate | undefined;

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
        release: snap.sourceRelease ?? null,
        configs: names.slice(0, HISTORY_MAX_CONFIGS).map((name) => ({ name, hash: snap.configs.get(name)!.hash, kind: 'added', changes: [], truncated: false })),
        more: Math.max(0, names.length - HISTORY_MAX_CONFIGS),
      });
    }
    this.#unsubscribe = hot.onConfigChange((change) => {
      this.#pending.push(change);
      this.#scheduled ??= setImmediate(() => this.#flush());
    });
  }

  /** The newest `limit` versions, newest first. */
  recent(limit: number): readonly VersionRecord[] {
    this.#flush();
    return this.#records.slice(-limit).reverse();
  }

  close(): void {
    this.#unsubscribe();
    clearImmediate(this.#scheduled);
    this.#pending = [];
  }

  #flush(): void {
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const pending = this.#pending;
    this.#pending = [];
    // Only the last HISTORY_MAX_VERSIONS can be kept: older ones are not diffed at all.
    for (const change of pending.slice(-HISTORY_MAX_VERSIONS)) this.#record(change);
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
      release: change.current.sourceRelease ?? null,
      configs,
      more: Math.max(0, names.length - HISTORY_MAX_CONFIGS),
    });
    if (this.#records.length > HISTORY_MAX_VERSIONS) this.#records.shift();
  }
}

/** The value changes from `before` to `after`; a secret (of either) shows as `"[REDACTED]"`, and a changed one as
 *  `"[REDACTED]"` both sides: that it changed, never what to. */
export function diffEntries(before: ConfigEntry | undefined, after: ConfigEntry): { changes: ValueChange[]; truncated: boolean } {
  const out: ValueChange[] = [];
  const secrets = new Set([...(before?.secrets ?? []), ...after.secrets]);
  const walk = new Walk(out, secrets);
  if (before === undefined) out.push({ pointer: '', op: 'add', to: walk.shown(after.value, '') });
  else walk.diff(before.value, after.value, '');
  out.sort((x, y) => (x.pointer < y.pointer ? -1 : x.pointer > y.pointer ? 1 : 0));
  return { changes: out.slice(0, HISTORY_MAX_CHANGES), truncated: walk.truncated || out.length > HISTORY_MAX_CHANGES };
}

/** One diff: both values walked together, within the node budget, secrets never descended into. */
class Walk {
  nodes = HISTORY_MAX_NODES;
  truncated = false;
  constructor(
    readonly out: ValueChange[],
    readonly secrets: ReadonlySet<string>,
  ) {}

  /** JSON text of `v` at `pointer`, redacted, cut. */
  shown(v: unknown, pointer: string): string {
    const text = JSON.stringify(this.secrets.size === 0 ? v : redact(v, [...this.secrets].filter((p) => p === pointer || p.startsWith(`${pointer}/`)).map((p) => p.slice(pointer.length)))) ?? 'null';
    return text.length > HISTORY_MAX_VALUE_CHARS ? `${text.slice(0, HISTORY_MAX_VALUE_CHARS)}…` : text;
  }

  diff(a: unknown, b: unknown, pointer: string): void {
    if (this.out.length > HISTORY_MAX_CHANGES || this.nodes-- <= 0) {
      this.truncated = true;
      return;
    }
    if (a === b) return;
    if (this.secrets.has(pointer)) {
      if (JSON.stringify(a) !== JSON.stringify(b)) this.out.push({ pointer, op: 'replace', from: SHOWN_SECRET, to: SHOWN_SECRET });
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      const n = Math.max(a.length, b.length);
      for (let i = 0; i < n && !this.truncated; i++) this.#child(a, b, String(i), `${pointer}/${i}`, i < a.length, i < b.length);
      return;
    }
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const key of Object.keys(a)) {
        if (this.truncated) return;
        this.#child(a, b, key, `${pointer}/${escape(key)}`, true, Object.hasOwn(b, key));
      }
      for (const key of Object.keys(b)) {
        if (this.truncated) return;
        if (!Object.hasOwn(a, key)) this.#child(a, b, key, `${pointer}/${escape(key)}`, false, true);
      }
      return;
    }
    if (!Object.is(a, b)) this.out.push({ pointer, op: 'replace', from: this.shown(a, pointer), to: this.shown(b, pointer) });
  }

  #child(a: object, b: object, key: string, pointer: string, inA: boolean, inB: boolean): void {
    const va = (a as Record<string, unknown>)[key];
    const vb = (b as Record<string, unknown>)[key];
    if (!inA) this.out.push({ pointer, op: 'add', to: this.shown(vb, pointer) });
    else if (!inB) this.out.push({ pointer, op: 'remove', from: this.shown(va, pointer) });
    else this.diff(va, vb, pointer);
    if (this.out.length > HISTORY_MAX_CHANGES) this.truncated = true;
  }
}

const SHOWN_SECRET = JSON.stringify(REDACTED);

const escape = (key: string) => (key.includes('~') || key.includes('/') ? key.replaceAll('~', '~0').replaceAll('/', '~1') : key);

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
