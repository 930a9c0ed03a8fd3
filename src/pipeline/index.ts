// The pipeline between a source and the store, knowing no source: a batch of config names → schemas re-read
// → each name read, parsed and validated (one document path) → the batch policy → one `store.commit` (one
// atomic version) → the batch reported. It keeps what the store cannot: each config's problem (error, held
// back, deleted), the names to retry, and the timing of the batch in flight for health checks.
import type { Logger } from 'pino';
import { mapLimit } from '../async.js';
import { capErrors, ConfigError, type ConfigErrorJSON } from '../errors.js';
import { walkConfigFiles } from '../load/walk.js';
import { isConfigName } from '../names.js';
import type { BatchPolicy } from '../options.js';
import type { Source, SourceBatch } from '../source/index.js';
import type { EntryInput, Store, Unsubscribe } from '../store/index.js';
import { applyAppCheck, secretValues, type AppCheck } from './appcheck.js';
import type { SourceExcerpts } from './excerpt.js';
import { outcomeOf, type DocumentStages, type Outcome } from './document.js';

export { applyAppCheck, boundOutput, secretValues, APP_CHECK_OUTPUT_CHARS, type AppCheck, type Candidate, type CandidateEntry } from './appcheck.js';
export { EXCERPT_CONTEXT_LINES, EXCERPT_MAX, EXCERPT_MAX_LINES, EXCERPT_MAX_SECRETS, EXCERPT_MAX_LINE_CHARS, type SourceExcerpt, type SourceExcerpts } from './excerpt.js';
export { contentHash, outcomeOf, validateDocument, type DocumentStages, type Outcome } from './document.js';

export type ConfigState = 'ok' | 'error' | 'pending' | 'deleted';

/** What one processed batch did: for logs, metrics and the daemon's status line. */
export interface BatchResult {
  /** The store's version after the batch. */
  readonly version: number;
  /** True when the batch committed a new version. */
  readonly committed: boolean;
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Problems found in this batch (the batch may still have committed under `per-file`). */
  readonly errors: readonly ConfigErrorJSON[];
  /** Names held back by `all-or-nothing`. */
  readonly held: readonly string[];
  /** The names whose errors held them back (empty when nothing was held). */
  readonly heldBy: readonly string[];
  /** Time spent processing the batch, in ms. */
  readonly durationMs: number;
  /** From the first event of the batch to the end of its processing, in ms. */
  readonly latencyMs: number;
}

/** A config whose state is not plain `ok`. */
export interface Problem {
  readonly state: ConfigState;
  readonly file: string | undefined;
  readonly errors: readonly ConfigError[];
  readonly since: number;
  /** For a `pending` config held back by `all-or-nothing`: the configs whose errors hold it. */
  readonly heldBy?: readonly string[];
  /** For an `error` config: the lines of the refused document around its errors, secrets masked (excerpt.ts). */
  readonly excerpts?: SourceExcerpts;
}

/** The options the pipeline reads at each batch (some change while running). */
export interface PipelineSettings {
  readonly batchPolicy: BatchPolicy;
  readonly maxFileBytes: number;
  readonly keepOnDelete: boolean;
  readonly concurrency: number;
  /** Most errors kept per refused config; the rest are counted ("and M more"). Default 20. */
  readonly maxErrorsPerConfig?: number;
  /** Keep each valid config's source text (entry.source): an application check or `publish.format: source` needs it. */
  readonly keepSource?: boolean;
}

export interface PipelineOptions {
  readonly store: Store;
  readonly stages: DocumentStages;
  /** Where `'all'` schemas are listed from; undefined when configs need no schema. */
  readonly schemaDir: string | undefined;
  readonly settings: () => PipelineSettings;
  readonly logger: Logger;
  /** The application's check of each candidate version, between validation and commit (appcheck.ts). */
  readonly check?: AppCheck | undefined;
}

export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #log: Logger;
  /** Configs whose state is not plain `ok`. */
  readonly problems = new Map<string, Problem>();
  /** Names held back by an all-or-nothing failure: retried with the next batch. */
  readonly #retry = new Set<string>();
  readonly #listeners = new Set<(result: BatchResult) => void>();
  #batchStartedAt: number | undefined;
  #lastBatchAt: number | undefined;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /** How long the batch being processed has been running, in ms; undefined when idle. */
  get batchInFlightMs(): number | undefined {
    return this.#batchStartedAt === undefined ? undefined : performance.now() - this.#batchStartedAt;
  }

  /** When the last batch finished (ms since the epoch); undefined before the first. */
  get lastBatchAt(): number | undefined {
    return this.#lastBatchAt;
  }

  /** Calls `listener` after every processed batch, committed or not. */
  onBatch(listener: (result: BatchResult) => void): Unsubscribe {
    this.#listeners.add(listener);
    const off = () => void this.#listeners.delete(listener);
    return Object.assign(off, { [Symbol.dispose]: off });
  }

  /** Every problem outstanding (the `error` states). */
  currentErrors(): ConfigErrorJSON[] {
    return [...this.problems.values()].filter((p) => p.state === 'error').flatMap((p) => p.errors.map((e) => e.toJSON()));
  }

  /**
   * The loop over a source's batches, one at a time, timed for health. A bug or an unexpected I/O failure
   * must not end the pipeline: it is logged and the source is asked to look at everything again.
   */
  async run(source: Source): Promise<void> {
    for await (const batch of source) {
      this.#batchStartedAt = performance.now();
      try {
        // A fleet release is one unit: applied whole or not at all, whatever the policy.
        await this.process(source, batch, batch.release === undefined ? this.#o.settings().batchPolicy : 'all-or-nothing');
      } catch (err) {
        this.#log.error({ err, seq: batch.seq }, 'batch failed unexpectedly; looking at everything again');
        source.resync().catch(() => undefined);
      } finally {
        this.#batchStartedAt = undefined;
        this.#lastBatchAt = Date.now();
      }
    }
  }

  /** Reads, validates and commits one batch under `policy`. Returns the errors of the batch. */
  async process(source: Source, batch: SourceBatch, policy: BatchPolicy): Promise<ConfigError[]> {
    const started = performance.now();
    // Schemas first: a changed schema re-validates the configs that use it. A source that does not watch them
    // has every schema read with its initial listing and each resync.
    const schemas = batch.schemas ?? (batch.reasons.has('request') ? 'all' : new Set<string>());
    const names = new Set<string>(await this.#reloadSchemas(schemas, source));
    for (const name of batch.names) names.add(name);
    // A full listing: whatever the store holds or refused and the listing lacks is gone.
    if (batch.full) for (const name of [...this.#o.store.snapshot().configs.keys(), ...this.problems.keys()]) names.add(name);
    // Nothing new (a verify tick that found nothing): held-back names wait for a real change, so that an
    // invalid file is reported once, not once per tick. A batch that moves the source's revision still commits it.
    if (names.size === 0 && batch.revision === undefined) return [];
    for (const name of this.#retry) names.add(name);

    const settings = this.#o.settings();
    const limits = { maxFileBytes: settings.maxFileBytes };
    const keepSource = settings.keepSource === true || this.#o.check !== undefined;
    const read = await mapLimit([...names].sort(), settings.concurrency, async (name) => {
      const live = () => secretValues([this.#o.store.snapshot().configs.get(name) ?? { value: undefined, secrets: [] }]);
      const o = await outcomeOf(name, await source.read(name, limits), this.#o.stages, limits, keepSource, { live });
      if (o.kind !== 'removed' && !isConfigName(name)) return unusableName(name, o.shown);
      return o.kind === 'error' ? { ...o, errors: capErrors(o.errors, settings.maxErrorsPerConfig ?? 20) } : o;
    });
    const outcomes = await this.#appCheck(read, policy, settings);
    const { errors, applied } = this.#apply(outcomes, policy, settings, started, batch);
    await source.settled?.(batch, { applied, errors: errors.length });
    return errors;
  }

  /** The application's check of the candidate this batch would commit. Not run when nothing would change, nor
   *  when `all-or-nothing` holds the batch back anyway. A refusal refuses the whole candidate (any policy). */
  async #appCheck(outcomes: readonly Outcome[], policy: BatchPolicy, settings: PipelineSettings): Promise<readonly Outcome[]> {
    const check = this.#o.check;
    if (check === undefined) return outcomes;
    if (policy === 'all-or-nothing' && outcomes.some((o) => o.kind === 'error' || o.kind === 'unsettled')) return outcomes;
    const t0 = performance.now();
    const result = await applyAppCheck(check, outcomes, this.#o.store.snapshot().configs, settings.keepOnDelete);
    if (result.ran) this.#log.debug({ ms: round(performance.now() - t0), refused: result.refused !== undefined }, 'application check done');
    return result.outcomes;
  }

  async #reloadSchemas(schemas: ReadonlySet<string> | 'all', source: Source): Promise<string[]> {
    const onRead = source.schemaRead?.bind(source);
    if (schemas === 'all') {
      if (this.#o.schemaDir === undefined) return [];
      const files: string[] = [];
      for await (const f of walkConfigFiles(this.#o.schemaDir, { extensions: ['.json'] })) if (this.#o.stages.registry.nameOfFile(f) !== undefined) files.push(f);
      return this.#o.stages.registry.reload(files, onRead);
    }
    return schemas.size === 0 ? [] : this.#o.stages.registry.reload(schemas, onRead);
  }

  /** Records the outcomes of a batch, commits the valid ones (all or nothing, or per file) with the source's
   *  revision, reports the problems. Returns the errors of the batch. */
  #apply(outcomes: readonly Outcome[], policy: BatchPolicy, settings: PipelineSettings, started: number, batch: SourceBatch): { errors: ConfigError[]; applied: boolean } {
    const { store } = this.#o;
    const sourceRevision = batch.revision;
    const sourceRelease = batch.release;
    const failed = outcomes.filter((o): o is Extract<Outcome, { kind: 'error' }> => o.kind === 'error');
    const errors = failed.flatMap((o) => o.errors);
    const unsettled = outcomes.filter((o) => o.kind === 'unsettled');
    const holdBack = (failed.length > 0 || unsettled.length > 0) && policy === 'all-or-nothing';
    // What holds the batch back, for status and the log: a held config names them (`heldBy`).
    const heldBy = holdBack ? [...failed, ...unsettled].map((o) => o.name) : [];
    const now = Date.now();

    const set: EntryInput[] = [];
    const remove: string[] = [];
    const recovered: string[] = [];
    this.#retry.clear();
    for (const o of outcomes) {
      if (o.kind === 'error') {
        this.problems.set(o.name, { state: 'error', file: o.shown, errors: o.errors, since: now, ...(o.excerpts ? { excerpts: o.excerpts } : {}) });
        if (holdBack || o.retry === true) this.#retry.add(o.name);
      } else if (o.kind === 'unsettled') {
        this.#retry.add(o.name);
        this.problems.set(o.name, { state: 'pending', file: o.shown, errors: [], since: now });
      } else if (holdBack) {
        this.#retry.add(o.name);
        this.problems.set(o.name, { state: 'pending', file: o.kind === 'ok' ? o.shown : undefined, errors: [], since: now, heldBy });
      } else if (o.kind === 'ok') {
        if (this.problems.get(o.name)?.state === 'error') recovered.push(o.name);
        this.problems.delete(o.name);
        set.push({ name: o.name, value: o.value, hash: o.hash, path: o.path, secrets: o.secrets, ...(o.source ? { source: o.source } : {}) });
      } else if (settings.keepOnDelete && store.snapshot().configs.has(o.name)) {
        this.problems.set(o.name, { state: 'deleted', file: undefined, errors: [], since: now });
      } else {
        this.problems.delete(o.name);
        remove.push(o.name);
      }
    }

    const change = holdBack
      ? undefined
      : store.commit({ set, remove, ...(sourceRevision === undefined ? {} : { sourceRevision }), ...(sourceRelease === undefined ? {} : { sourceRelease }) });
    const ms = round(performance.now() - started);
    if (change) {
      // One line per commit; no empty fields (`removed` only when something was removed).
      this.#log.info(
        {
          version: change.version,
          changed: change.changed,
          ...(change.removed.length > 0 ? { removed: change.removed } : {}),
          ...(sourceRevision === undefined ? {} : { sourceRevision }),
          ...(sourceRelease === undefined ? {} : { release: sourceRelease }),
          ms,
          latencyMs: round(performance.now() - batch.firstHintAt),
        },
        'config committed',
      );
    }
    if (recovered.length > 0) this.#log.info({ names: recovered, version: store.version }, 'config valid again');
    if (errors.length > 0) {
      // One event for the refusal, at error level (`journalctl -p err` lists it), each problem's message once, each
      // config's errors capped; `heldBy` names the configs whose errors hold the others back.
      this.#log.error(
        {
          errors: errors.map((e) => e.toJSON()),
          ...(holdBack ? { held: [...this.#retry] } : {}),
          // said only when a config is held back by another's error
          ...([...this.#retry].some((n) => !heldBy.includes(n)) ? { heldBy } : {}),
          policy,
          version: store.version,
        },
        holdBack ? 'batch rejected; last good config stays live' : 'invalid config refused; last good value stays live',
      );
    }
    // Listeners hear of the batch in the same tick as status changes, before the source looks again.
    this.#emit({
      version: store.version,
      committed: change !== undefined,
      changed: change?.changed ?? [],
      removed: change?.removed ?? [],
      errors: errors.map((e) => e.toJSON()),
      held: holdBack ? [...this.#retry] : [],
      heldBy,
      durationMs: ms,
      latencyMs: round(performance.now() - batch.firstHintAt),
    });
    return { errors, applied: !holdBack };
  }

  #emit(result: BatchResult): void {
    for (const listener of this.#listeners) {
      try {
        listener(result);
      } catch (err) {
        this.#log.error({ err }, 'batch listener failed');
      }
    }
  }
}

/** A name that cannot be served or published as a file (a backslash, a control character): that config's error,
 *  so it never enters the store, where it would make every later publish fail. */
export function unusableNameError(name: string, shown: string | undefined): ConfigError {
  const detail = `config name ${JSON.stringify(name)} cannot be used: a name may not contain a backslash or a control character, nor be longer than 4096 characters (it could not be served or published)`;
  return new ConfigError('E_NAME', { file: shown ?? JSON.stringify(name) }, detail);
}

function unusableName(name: string, shown: string | undefined): Outcome {
  return { kind: 'error', name, shown, errors: [unusableNameError(name, shown)] };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
