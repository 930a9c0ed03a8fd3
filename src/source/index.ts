// The first stage of the pipeline: a source turns whatever it watches (a directory, an etcd prefix) into
// batches of config names that may have changed, and reads a config's bytes on request. The pipeline knows
// only this interface; a source knows nothing of what happens after it (DESIGN.md "Sources").
// A new source lives in its own folder beside `files/` and `etcd/` and is wired with one line in hotconf.ts.
import type { ConfigError } from '../errors.js';
import type { FileIdentity } from '../load/index.js';
import type { ConfigFormat } from '../names.js';
import type { BatchReason } from './queue.js';

export type { BatchReason } from './queue.js';

/** One unit of work for the pipeline: the configs that may have changed since the previous batch. */
export interface SourceBatch {
  /** Increases by one per batch. */
  readonly seq: number;
  /** Names of configs that may have changed (added, modified, removed). */
  readonly names: ReadonlySet<string>;
  /** True when `names` lists every config the source has: a name the pipeline knows (committed, or refused)
   *  that is missing from it is gone. */
  readonly full: boolean;
  /** Schema files that may have changed (absolute paths), from a source that watches the schema directory (on
   *  a `'request'` batch: every schema file). Left out by a source that does not: the pipeline then reads every
   *  schema with each `'request'` batch (the initial listing, a resync). */
  readonly schemas?: ReadonlySet<string> | undefined;
  /** Why this batch exists: `'request'` for the initial listing and for a resync. */
  readonly reasons: ReadonlySet<BatchReason>;
  /** `performance.now()` of the earliest hint coalesced into this batch (event → commit latency). */
  readonly firstHintAt: number;
  /** The source's own position after this batch (the etcd revision); committed with the version. */
  readonly revision?: string | undefined;
  /** The fleet release this batch is (etcd release mode): the whole release (`full`) or what differs from the
   *  release the store holds; applied whole or not at all (all-or-nothing whatever `batchPolicy`: an instance runs
   *  release N or N-1, never a mix); committed with the version (`snapshot().sourceRelease`). */
  readonly release?: number | undefined;
}

/** What the pipeline did with a batch, as its source hears it (`settled`). */
export interface BatchOutcome {
  /** The batch's valid content is what the store serves now (false: held back by `all-or-nothing`). */
  readonly applied: boolean;
  /** Problems found in the batch. */
  readonly errors: number;
}

/** A fleet of instances sharing a source (etcd release mode), as `GET /v1/fleet` shows it. */
export interface FleetStatus {
  /** The release every instance outside the canary runs. */
  readonly stable: number;
  readonly canary: { readonly release: number; readonly ids: readonly string[]; readonly auto: { readonly bakeMs: number } | null; readonly startedAt: number } | null;
  readonly instances: readonly FleetInstance[];
}

export interface FleetInstance {
  readonly id: string;
  /** The release it serves (null before its first). */
  readonly release: number | null;
  /** The release the fleet's head tells it to run. */
  readonly target: number | null;
  /** `error`: it refused `target` and keeps serving `release`. */
  readonly state: 'ok' | 'error';
  readonly errors: number;
  /** ms since the epoch. */
  readonly appliedAt: number | null;
  readonly seenAt: number;
  readonly startedAt: number;
  /** Serving a cached release since (ms), etcd being unreachable at its start; null otherwise. */
  readonly staleSince: number | null;
  readonly host: string;
  readonly pid: number;
  readonly hotconf: string;
}

/** What reading one config name from a source found. */
export type EntryRead =
  /** The bytes of the one entry behind the name. `path` identifies it (`ConfigEntry.path`); `shown` names it in
   *  messages. The bytes are handed over: the pipeline may move them to its parser thread, which empties a
   *  Buffer that owns its whole memory, so a source that keeps its bytes returns a copy. Larger than the
   *  `maxFileBytes` of the read, they are refused by the pipeline (a source should refuse them before reading). */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array; readonly format: ConfigFormat; readonly path: string; readonly shown: string }
  /** Nothing holds this name (any more). */
  | { readonly kind: 'missing' }
  /** The entry exists but cannot be used as it is (unreadable, too large, two entries for one name). */
  | { readonly kind: 'error'; readonly shown: string | undefined; readonly errors: readonly ConfigError[] }
  /** Written faster than it could be read whole: not an error, just not yet; the source hints it again. */
  | { readonly kind: 'unsettled'; readonly shown: string };

/** Where the configs come from, and whether that source is reachable. Each source adds its own fields. */
export interface SourceStatusBase {
  readonly kind: string;
  /** A disconnected source keeps the last good config served. */
  readonly connected: boolean;
}

/**
 * A source of configs. Iterate it once (`for await`); breaking out of the loop or `close()` releases
 * everything it holds. `open` functions resolve once the source watches and its initial listing is ready.
 */
export interface Source<S extends SourceStatusBase = SourceStatusBase> extends AsyncIterable<SourceBatch>, AsyncDisposable {
  /** Every config there is at open: the first batch, processed before the iteration starts. */
  readonly initial: SourceBatch;
  /** Reads the entry behind one config name. Called with bounded concurrency during a batch. */
  read(name: string, limits: ReadLimits): Promise<EntryRead>;
  /** The pipeline is done with `batch` (committed, refused or held): a source whose events are only hints
   *  looks again at what it read. */
  settled?(batch: SourceBatch, outcome?: BatchOutcome): Promise<void>;
  /** For a source that lists `schemas`: the identity of each schema file as the pipeline read it (undefined
   *  when it could not be read), so that the source knows what was read without a stat of its own. */
  schemaRead?(file: string, identity: FileIdentity | undefined, error?: ConfigError): void;
  /** Asks for a full look at everything (reload); resolves when the pipeline has processed it. */
  resync(): Promise<void>;
  /** Resolves once a batch has gone all the way through the pipeline: proof that it still moves. */
  ping(): Promise<void>;
  /** Changes the batch timing while running. */
  setTiming?(timing: SourceTiming): void;
  status(): S;
  /** The fleet this instance belongs to (etcd release mode), read now; undefined when the source has none. */
  fleet?(): Promise<FleetStatus | undefined>;
  close(): Promise<void>;
}

export interface ReadLimits {
  /** Largest entry accepted, in bytes. */
  readonly maxFileBytes: number;
}

export interface SourceTiming {
  debounceMs?: number | undefined;
  maxBatchDelayMs?: number | undefined;
  verifyIntervalMs?: number | undefined;
}
