// The one batch queue every source feeds: hints go in as keyed items, coalesced per key (memory bounded by the
// number of distinct keys, never by the number of events), and come out as batches pulled by the pipeline with
// `for await`. A batch is released after a quiet window (`debounceMs`, restarted by each hint that says so)
// but never later than a ceiling (`maxBatchDelayMs`) after its first hint, so a storm still commits while it
// lasts; urgent hints (requests, verify ticks) release at once. Events that arrive while the consumer works
// on a batch go into the next one. Pure timing and bookkeeping: testable with fake timers, no I/O.

/** Why a batch exists. */
export type BatchReason = 'event' | 'error' | 'verify' | 'request' | 'ping';

export interface QueueOptions<T> {
  /** Quiet time after the last restarting hint before a batch is released, in ms. Required: each source passes
   *  its own (the files source: the `debounceMs` option; etcd: 0, a revision is already a whole batch). */
  debounceMs: number;
  /** Ceiling on how long hints can hold a batch back, in ms (raised to `debounceMs` if lower). Default: `debounceMs`. */
  maxBatchDelayMs?: number;
  /** Most distinct keys held for the next batch; past it the items are dropped and the batch is marked
   *  `overflowed` (the source then looks at everything). Default Infinity. */
  maxKeys?: number;
  /** How a second hint for a key combines with the first. Default: the later one wins. */
  merge?: (earlier: T, later: T) => T;
  /** Called when the consumer is done with a batch (it pulled the next one, or stopped), with the time it took. */
  onFinished?: (batch: QueuedBatch<T>, durationMs: number) => void;
}

export interface QueuedBatch<T> {
  /** Increases by one per batch, from 1. */
  readonly seq: number;
  /** Every key hinted since the previous batch, with its (merged) item. */
  readonly items: ReadonlyMap<string, T>;
  readonly reasons: ReadonlySet<BatchReason>;
  /** `performance.now()` of the earliest hint coalesced into this batch. */
  readonly firstHintAt: number;
  /** True when `replace` started this batch afresh: `items` is everything there is, not a delta. */
  readonly full: boolean;
  /** True when more than `maxKeys` distinct keys were hinted: `items` is incomplete, look at everything. */
  readonly overflowed: boolean;
}

export interface HintOptions {
  /** Release the batch at once, without waiting for the quiet window. Default false. */
  urgent?: boolean;
  /** This hint restarts the quiet window of a pending batch (watcher events do; re-checks and ticks only ride
   *  along). The first hint of a batch always opens its window. Default true. */
  restarts?: boolean;
  /** Drop what is pending and start the batch from these items (a full re-read). Default false. */
  replace?: boolean;
}

interface Pending<T> {
  items: Map<string, T>;
  reasons: Set<BatchReason>;
  firstHintAt: number;
  lastHintAt: number;
  settle: Array<() => void>;
  urgent: boolean;
  full: boolean;
  overflowed: boolean;
}

function emptyPending<T>(): Pending<T> {
  return { items: new Map(), reasons: new Set(), firstHintAt: 0, lastHintAt: 0, settle: [], urgent: false, full: false, overflowed: false };
}

/** Single consumer: iterate it once. `close()` ends the iteration and settles every waiting request. */
export class BatchQueue<T> implements AsyncIterable<QueuedBatch<T>> {
  #debounceMs: number;
  #maxBatchDelayMs: number;
  readonly #maxKeys: number;
  readonly #merge: ((earlier: T, later: T) => T) | undefined;
  readonly #onFinished: QueueOptions<T>['onFinished'];
  #pending: Pending<T> = emptyPending();
  #inFlight: { batch: QueuedBatch<T>; settle: Array<() => void>; since: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #due = false;
  #waiter: ((batch: QueuedBatch<T> | undefined) => void) | undefined;
  #seq = 0;
  #closed = false;

  constructor(options: QueueOptions<T>) {
    this.#debounceMs = Math.max(0, options.debounceMs);
    this.#maxBatchDelayMs = Math.max(this.#debounceMs, options.maxBatchDelayMs ?? 0);
    this.#maxKeys = options.maxKeys ?? Infinity;
    this.#merge = options.merge;
    this.#onFinished = options.onFinished;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** True when nothing waits for the next batch. */
  get idle(): boolean {
    return this.#pending.reasons.size === 0;
  }

  /** The batch the consumer holds, if any. */
  get inFlight(): QueuedBatch<T> | undefined {
    return this.#inFlight?.batch;
  }

  /** Adds hints for the next batch. Ignored once closed. */
  add(items: Iterable<readonly [string, T]>, reason: BatchReason, options: HintOptions = {}): void {
    this.#add(items, reason, options, undefined);
  }

  /** Adds hints, released at once; resolves when the consumer is done with the batch that carried them (or at
   *  once when closed). */
  request(items: Iterable<readonly [string, T]>, reason: BatchReason, options: Omit<HintOptions, 'urgent'> = {}): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => this.#add(items, reason, { ...options, urgent: true }, resolve));
  }

  /** Resolves when a batch has gone through the consumer. Rides along with pending hints and never cuts their
   *  quiet window short; alone, it is released at once. */
  ping(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => this.#add([], 'ping', { urgent: this.idle, restarts: false }, resolve));
  }

  /** Keeps a pending batch (if any) for at least `ms` from now, within its `maxBatchDelayMs` ceiling. */
  hold(ms: number): void {
    const p = this.#pending;
    if (this.#closed || p.reasons.size === 0 || p.urgent) return;
    p.lastHintAt = Math.max(p.lastHintAt, performance.now() + ms - this.#debounceMs);
    this.#schedule();
  }

  /** Changes the timing; the pending batch is rescheduled with it. */
  setTiming(timing: { debounceMs?: number | undefined; maxBatchDelayMs?: number | undefined }): void {
    if (timing.debounceMs !== undefined) this.#debounceMs = Math.max(0, timing.debounceMs);
    if (timing.maxBatchDelayMs !== undefined) this.#maxBatchDelayMs = timing.maxBatchDelayMs;
    this.#maxBatchDelayMs = Math.max(this.#debounceMs, this.#maxBatchDelayMs);
    this.#schedule();
  }

  #add(items: Iterable<readonly [string, T]>, reason: BatchReason, options: HintOptions, settle: (() => void) | undefined): void {
    if (this.#closed) {
      settle?.();
      return;
    }
    const now = performance.now();
    const p = this.#pending;
    if (options.replace) {
      p.items.clear();
      p.full = true;
      p.overflowed = false;
    }
    if (p.reasons.size === 0) {
      p.firstHintAt = now;
      p.lastHintAt = now;
    } else if (options.restarts ?? true) {
      p.lastHintAt = now;
    }
    p.reasons.add(reason);
    for (const [key, item] of items) {
      if (p.overflowed) break;
      const earlier = p.items.get(key);
      if (earlier === undefined && p.items.size >= this.#maxKeys) {
        p.items.clear();
        p.overflowed = true;
        break;
      }
      p.items.set(key, earlier !== undefined && this.#merge ? this.#merge(earlier, item) : item);
    }
    if (settle) p.settle.push(settle);
    if (options.urgent) p.urgent = true;
    this.#schedule();
  }

  #schedule(): void {
    const p = this.#pending;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = false;
    if (p.reasons.size === 0 || this.#closed) return;
    const now = performance.now();
    const at = p.urgent ? now : Math.min(p.lastHintAt + this.#debounceMs, p.firstHintAt + this.#maxBatchDelayMs);
    const wait = Math.max(0, at - now);
    if (wait === 0 && p.urgent) {
      this.#markDue();
      return;
    }
    this.#timer = setTimeout(() => this.#markDue(), wait);
  }

  #markDue(): void {
    this.#timer = undefined;
    this.#due = true;
    this.#deliver();
  }

  #deliver(): void {
    if (!this.#waiter || !this.#due || this.#pending.reasons.size === 0) return;
    const p = this.#pending;
    this.#pending = emptyPending();
    this.#due = false;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    const batch: QueuedBatch<T> = { seq: ++this.#seq, items: p.items, reasons: p.reasons, firstHintAt: p.firstHintAt, full: p.full, overflowed: p.overflowed };
    this.#inFlight = { batch, settle: p.settle, since: performance.now() };
    waiter(batch);
  }

  #finishInFlight(): void {
    const f = this.#inFlight;
    if (!f) return;
    this.#inFlight = undefined;
    for (const settle of f.settle) settle();
    this.#onFinished?.(f.batch, performance.now() - f.since);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<QueuedBatch<T>> {
    try {
      for (;;) {
        this.#finishInFlight();
        if (this.#closed) return;
        const batch = await new Promise<QueuedBatch<T> | undefined>((resolve) => {
          this.#waiter = resolve;
          this.#deliver();
        });
        if (batch === undefined) return;
        yield batch;
      }
    } finally {
      this.#finishInFlight();
      this.close();
    }
  }

  /** Ends iteration, clears the timer and settles every request. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const settle of this.#pending.settle) settle();
    this.#pending = emptyPending();
    this.#finishInFlight();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(undefined);
  }
}
