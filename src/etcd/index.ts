// The second source of the pipeline (DESIGN.md "Sources"): the keys under an etcd prefix become batches, as
// directory events do for files. The start is revision-consistent (one range read at revision R, the watch
// from R+1), one etcd revision is never split across batches, a lost connection resumes from the last revision
// seen, and a compacted revision (or a cluster whose revision went backwards) turns into one full re-read.
// etcd3's own watcher resumes from the revision of its last *create* response, which can skip events that were
// still being replayed when the stream broke, and it reuses a stale auth token on a new stream: so this module
// owns the reconnect loop and only lets etcd3 carry one watch at a time.
import { readFile } from 'node:fs/promises';
import type { Etcd3, ICompare, IKeyValue, IOptions, IWatchResponse } from 'etcd3';
import type { Logger } from 'pino';
import { HotconfError } from '../errors.js';
import type { BatchReason, ChangeBatch } from '../watch/index.js';

export interface EtcdTlsOptions {
  /** PEM file of the CA that signed etcd's server certificate. Default: the system's roots. */
  ca?: string;
  /** PEM file of this client's certificate (etcd `--client-cert-auth`). Default: none. */
  cert?: string;
  /** PEM file of this client's private key, with `cert`. Default: none. */
  key?: string;
}

export interface EtcdOptions {
  /** etcd client URLs, `http://HOST:PORT` or `https://HOST:PORT`. Required, at least one. */
  endpoints: readonly string[];
  /** Key prefix holding the configs, e.g. `/hotconf/` (a missing final `/` is added): `<prefix>app.yaml` is the
   *  config `app`. Required. */
  prefix: string;
  /** etcd user (etcd `auth enable`). Default: none. */
  username?: string;
  /** Password of `username`. Default: none. */
  password?: string;
  /** TLS files; also implied by `https://` endpoints. Default: none. */
  tls?: EtcdTlsOptions;
  /** Deadline of each unary request (range reads, the reconnect probe, push transactions), in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** First delay before reconnecting after the connection is lost, in ms (doubles, with jitter). Default 200. */
  reconnectMinMs?: number;
  /** Longest delay between reconnect attempts, in ms. Default 5000. */
  reconnectMaxMs?: number;
}

/** One etcd revision (or several consecutive ones, when the consumer fell behind), or a full re-read. */
export interface EtcdBatch extends ChangeBatch {
  /** The etcd revision the configs reflect after this batch. */
  readonly revision: string;
  /** Keys written (their new bytes) or deleted (null). For a `full` batch: every key under the prefix. */
  readonly entries: ReadonlyMap<string, Uint8Array | null>;
  /** True when `entries` is the whole prefix (start, compaction, reload): keys not in it are gone. */
  readonly full: boolean;
}

export type EtcdConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface EtcdSourceStatus {
  readonly kind: 'etcd';
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly state: EtcdConnectionState;
  readonly connected: boolean;
  /** The last etcd revision seen (applied or about to be). */
  readonly revision: string;
  /** When `state` last changed (ms since the epoch). */
  readonly since: number;
  /** The last connection problem, while not connected. */
  readonly lastError: string | undefined;
  /** Full re-reads since start (compaction, a reset cluster, reload()). */
  readonly resyncs: number;
}

interface Pending {
  entries: Map<string, Uint8Array | null>;
  revision: bigint;
  full: boolean;
  firstHintAt: number;
  reasons: Set<BatchReason>;
  /** Resolved once the consumer has processed the batch (reload() waits for its re-read). */
  settle: Array<() => void>;
}

/** The etcd source failed: unreachable at start, authentication refused, a bad option. */
export class EtcdError extends HotconfError {}

const DEFAULTS = { requestTimeoutMs: 5000, reconnectMinMs: 200, reconnectMaxMs: 5000 };
/** Largest response accepted from etcd (a full read of the prefix is one response). */
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

/** Checks the options and builds the etcd3 client (does not connect). */
export async function etcdClient(options: EtcdOptions): Promise<Etcd3> {
  checkEtcdOptions(options);
  // Loaded on first use: gRPC and protobuf cost ~0.5 s of start-up that directory users should not pay.
  const [{ Etcd3, isRecoverableError }, { circuitBreaker, ConsecutiveBreaker, handleWhen, retry }] = await Promise.all([import('etcd3'), import('cockatiel')]);
  const timeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  const hosts = [...options.endpoints];
  const tls = options.tls;
  const secure = hosts.some((h) => h.startsWith('https://')) || tls !== undefined;
  const read = async (what: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new EtcdError('E_OPTIONS', `etcd.tls.${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const ca = await read('ca', tls?.ca);
  const cert = await read('cert', tls?.cert);
  const key = await read('key', tls?.key);
  const opts: IOptions = {
    hosts,
    dialTimeout: timeout,
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      // A peer that vanished without a reset (a partition) is noticed within ~15 s, not at the next TCP timeout.
      // etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      // This module retries with its own backoff; etcd3's default breaker would hold a recovered etcd off for 5 s.
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(0, hosts.length - 1) }),
    },
  };
  if (secure) {
    // etcd3 builds TLS credentials only from a root certificate; without one, Node's bundled roots are used.
    opts.credentials = { rootCertificate: ca ?? Buffer.from((await import('node:tls')).rootCertificates.join('\n')) };
    if (cert !== undefined) opts.credentials.certChain = cert;
    if (key !== undefined) opts.credentials.privateKey = key;
  }
  if (options.username !== undefined) opts.auth = { username: options.username, password: options.password ?? '' };
  return new Etcd3(opts);
}

export function checkEtcdOptions(o: EtcdOptions): void {
  const fail = (msg: string): never => {
    throw new EtcdError('E_OPTIONS', `invalid etcd options: ${msg}`);
  };
  if (typeof o !== 'object' || o === null) fail('an object is required');
  if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) fail('`endpoints` (at least one http:// or https:// URL) is required');
  for (const e of o.endpoints) {
    if (typeof e !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(e)) fail(`endpoint ${JSON.stringify(e)} is not http://HOST:PORT or https://HOST:PORT`);
  }
  if (typeof o.prefix !== 'string' || o.prefix === '') fail('`prefix` (e.g. "/hotconf/") is required');
  if (o.password !== undefined && o.username === undefined) fail('`password` needs `username`');
  for (const k of ['requestTimeoutMs', 'reconnectMinMs', 'reconnectMaxMs'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) fail(`\`${k}\` must be a number > 0 (ms)`);
  }
}

/** Prefixes name a folder of keys: `/hotconf` is read as `/hotconf/` (or `/hotconfig/x.yaml` would match). */
export function normalizePrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** `etcd:/hotconf/app.yaml`: how a key is named in messages, status and `ConfigEntry.path`. */
export function displayKey(key: string): string {
  return `etcd:${key}`;
}

/** Turns etcd3's errors into one line a person can act on. */
export function describeEtcdError(err: unknown, endpoints: readonly string[]): EtcdError {
  const msg = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.constructor.name : '';
  if (/authentication failed|invalid user ?ID or password/i.test(msg) || name === 'EtcdAuthenticationFailedError') {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): authentication failed: wrong username or password`, { cause: err });
  }
  if (/permission denied/i.test(msg)) {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): permission denied: the user may not read the prefix`, { cause: err });
  }
  if (/user name is empty|authentication is not enabled|auth.*not.*enabled/i.test(msg) || /Unauthenticated/.test(name)) {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): ${msg}`, { cause: err });
  }
  return new EtcdError('E_SOURCE_UNAVAILABLE', `etcd (${endpoints.join(',')}) is unreachable: ${msg}`, { cause: err });
}

const isCompaction = (err: unknown) => err instanceof Error && /compacted/i.test(err.message);

/**
 * The keys under `prefix` as an async iterable of {@link EtcdBatch}es (single consumer). `open()` reads the
 * prefix once (the initial batch, {@link EtcdSource.initial}); iteration yields what changed after it. The
 * connection is kept by a loop owned here: reconnect with backoff and jitter, resume after the last revision
 * seen. `close()` (or breaking out of the loop) cancels the watch and closes the client.
 */
export class EtcdSource implements AsyncIterable<EtcdBatch>, AsyncDisposable {
  readonly initial: EtcdBatch;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly timeoutMs: number;
  /** Resolved when the first watch attempt after open() is decided (connected or not). */
  private firstAttempt: (() => void) | undefined;
  private revision: bigint;
  private clusterId: string;
  private state: EtcdConnectionState = 'connecting';
  private since = Date.now();
  private lastError: string | undefined;
  private resyncs = 0;
  private seq = 1;
  /** The next batch for the consumer (revisions coalesced while it is busy; never a revision split). */
  private pending: Pending | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  /** Resolves the wait of the loop (a broken watch, a resync request, close). */
  private interrupt: ((why: 'lost' | 'canceled' | 'resync' | 'close') => void) | undefined;
  private resyncRequested = false;

  private constructor(client: Etcd3, options: EtcdOptions, logger: Logger, initial: { revision: bigint; clusterId: string; kvs: IKeyValue[] }) {
    this.client = client;
    this.prefix = normalizePrefix(options.prefix);
    this.endpoints = [...options.endpoints];
    this.log = logger;
    this.minMs = options.reconnectMinMs ?? DEFAULTS.reconnectMinMs;
    this.maxMs = Math.max(this.minMs, options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs);
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.revision = initial.revision;
    this.clusterId = initial.clusterId;
    this.initial = {
      seq: 0,
      paths: new Set(initial.kvs.map((kv) => displayKey(kv.key.toString()))),
      rescan: new Set([displayKey(this.prefix)]),
      reasons: new Set(['request']),
      firstHintAt: performance.now(),
      revision: initial.revision.toString(),
      entries: new Map(initial.kvs.map((kv) => [kv.key.toString(), kv.value])),
      full: true,
    };
  }

  /** Connects, reads the whole prefix at one revision and starts watching after it. Rejects with an
   *  {@link EtcdError} (`E_SOURCE_UNAVAILABLE`, `E_SOURCE_AUTH`) when etcd cannot be read. */
  static async open(options: EtcdOptions, logger: Logger): Promise<EtcdSource> {
    const client = await etcdClient(options);
    let res;
    try {
      res = await client.getAll().prefix(normalizePrefix(options.prefix)).exec();
    } catch (err) {
      client.close();
      throw describeEtcdError(err, options.endpoints);
    }
    const source = new EtcdSource(client, options, logger, {
      revision: BigInt(res.header.revision),
      clusterId: res.header.cluster_id,
      kvs: res.kvs,
    });
    logger.info({ revision: res.header.revision, keys: res.kvs.length, prefix: options.prefix }, 'etcd prefix read');
    // Ready means watching: wait for the first watch to be established (or to fail, then the loop retries).
    const decided = new Promise<void>((resolve) => (source.firstAttempt = resolve));
    source.loop = source.run();
    await decided;
    return source;
  }

  status(): EtcdSourceStatus {
    return {
      kind: 'etcd',
      endpoints: this.endpoints,
      prefix: this.prefix,
      state: this.state,
      connected: this.state === 'connected',
      revision: this.revision.toString(),
      since: this.since,
      lastError: this.state === 'connected' ? undefined : this.lastError,
      resyncs: this.resyncs,
    };
  }

  /** Asks for a full re-read of the prefix; resolves once the consumer has processed it. Rejects with an
   *  {@link EtcdError} when etcd cannot be read now (the last good config stays; nothing waits for etcd). */
  resync(): Promise<void> {
    if (this.closed) return Promise.reject(new HotconfError('E_CLOSED', 'the etcd source is closed'));
    return new Promise<void>((resolve, reject) => {
      this.resyncRequested = true;
      this.resyncWaiters.push({ resolve, reject });
      this.interrupt?.('resync');
    });
  }

  private readonly resyncWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];

  async *[Symbol.asyncIterator](): AsyncIterator<EtcdBatch> {
    try {
      while (!this.closed) {
        const p = this.pending;
        if (p === undefined) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = undefined;
          continue;
        }
        this.pending = undefined;
        const batch: EtcdBatch = {
          seq: this.seq++,
          paths: new Set([...p.entries.keys()].map(displayKey)),
          rescan: new Set(p.full ? [displayKey(this.prefix)] : []),
          reasons: p.reasons,
          firstHintAt: p.firstHintAt,
          revision: p.revision.toString(),
          entries: p.entries,
          full: p.full,
        };
        yield batch;
        // The consumer asked for the next batch: this one is processed.
        for (const settle of p.settle) settle();
      }
    } finally {
      await this.close();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.setState('closed', undefined);
      this.interrupt?.('close');
      this.wake?.();
      // A request in flight to an unreachable etcd would hold close() for its whole deadline: closing the
      // client ends it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.loop, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
      clearTimeout(timer);
      this.client.close();
      await this.loop;
      for (const settle of this.pending?.settle ?? []) settle();
      for (const w of this.resyncWaiters.splice(0)) w.reject(new HotconfError('E_CLOSED', 'the etcd source is closed'));
      this.log.debug('etcd source closed');
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the connection loop ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    let attempt = 0;
    let full = false;
    while (!this.closed) {
      try {
        if (full || this.resyncRequested) {
          await this.readAll(this.resyncRequested ? 'request' : 'error');
          full = false;
        } else {
          // A unary call first: it proves etcd answers, renews an auth token that a restarted etcd no longer
          // knows (etcd3 only does that for unary calls), and shows a cluster that was reset or replaced.
          const probe = await this.client.kv.range({ key: Buffer.from(this.prefix), count_only: true });
          if (probe.header.cluster_id !== this.clusterId || BigInt(probe.header.revision) < this.revision) {
            this.log.warn({ clusterId: probe.header.cluster_id, revision: probe.header.revision, seen: this.revision.toString() }, 'etcd cluster was reset or replaced; reading the prefix again');
            full = true;
            continue;
          }
        }
        if (this.closed) break;
        const why = await this.watchOnce(() => {
          attempt = 0;
          this.setState('connected', undefined);
        });
        if (why === 'close') break;
        if (why === 'resync') continue;
        if (why === 'canceled') {
          // etcd canceled the watch: a compacted start revision (etcd3 drops the compact_revision it came
          // with) or a revoked permission. A full re-read is right in every case, and says which.
          this.log.warn({ err: this.lastError, revision: this.revision.toString() }, 'etcd canceled the watch (compacted past its revision?); reading the prefix again');
          full = true;
          continue;
        }
        this.setState('disconnected', this.lastError);
        this.log.warn({ err: this.lastError, revision: this.revision.toString() }, 'etcd connection lost; serving the last good config, reconnecting');
      } catch (err) {
        if (this.closed) break;
        if (isCompaction(err)) {
          full = true;
          continue;
        }
        const e = describeEtcdError(err, this.endpoints);
        if (this.state !== 'disconnected' || this.lastError !== e.message) {
          this.log.warn({ err: e.message, attempt }, 'etcd unreachable; serving the last good config, retrying');
        }
        this.setState('disconnected', e.message);
      }
      // Full jitter over an exponential ceiling: a fleet that lost etcd together does not come back in step.
      const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(attempt, 20));
      attempt++;
      await this.sleep(ceiling / 2 + Math.random() * (ceiling / 2));
    }
  }

  /**
   * One watch from the revision after the last seen, until it breaks. etcd3's own resume is not used: the
   * watcher is dropped on the first 'disconnected', and the loop above creates the next one.
   */
  private async watchOnce(onConnected: () => void): Promise<'lost' | 'canceled' | 'resync' | 'close'> {
    const w = this.client
      .watch()
      .prefix(this.prefix)
      .startRevision((this.revision + 1n).toString())
      .watcher();
    let canceledByServer = false;
    let timer: NodeJS.Timeout | undefined;
    const why = await new Promise<'lost' | 'canceled' | 'resync' | 'close'>((resolve) => {
      this.interrupt = resolve;
      w.on('data', (res: IWatchResponse) => this.onData(res));
      w.on('connected', () => {
        clearTimeout(timer);
        onConnected();
      });
      w.on('disconnected', (err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        resolve('lost');
      });
      w.on('error', (err: unknown) => {
        // etcd3 has already dropped a watcher that emits 'error' (canceled by the server).
        canceledByServer = true;
        this.lastError = err instanceof Error ? err.message : String(err);
        resolve('canceled');
      });
      // A stream that never says yes or no (etcd3 would retry it silently): counts as lost.
      timer = setTimeout(() => {
        this.lastError = `no answer to the watch request within ${this.timeoutMs} ms`;
        resolve('lost');
      }, this.timeoutMs);
      if (this.closed) resolve('close');
      else if (this.resyncRequested) resolve('resync');
    });
    clearTimeout(timer);
    this.interrupt = undefined;
    w.removeAllListeners('data');
    if (!canceledByServer) {
      // cancel() waits for etcd to confirm; a dead stream never does (etcd3 detaches it on reconnect anyway).
      let t: NodeJS.Timeout | undefined;
      await Promise.race([w.cancel().catch(() => undefined), new Promise<void>((resolve) => (t = setTimeout(resolve, 1000)))]);
      clearTimeout(t);
    }
    return why;
  }

  /** Waits `ms`, or less if the source is closed or a resync is requested. */
  private async sleep(ms: number): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.interrupt = undefined;
        resolve();
      }, ms);
      this.interrupt = () => {
        clearTimeout(timer);
        this.interrupt = undefined;
        resolve();
      };
    });
  }

  /** One range read of the whole prefix: the next batch is `full`. */
  private async readAll(reason: 'request' | 'error'): Promise<void> {
    const waiters = this.resyncWaiters.splice(0);
    this.resyncRequested = false;
    let res;
    try {
      res = await this.client.getAll().prefix(this.prefix).exec();
    } catch (err) {
      // A requested re-read fails now (reload() says why); a compaction's re-read is retried by the loop.
      const e = describeEtcdError(err, this.endpoints);
      for (const w of waiters) w.reject(e);
      throw err;
    }
    this.resyncs++;
    this.revision = BigInt(res.header.revision);
    this.clusterId = res.header.cluster_id;
    this.log.info({ revision: res.header.revision, keys: res.kvs.length, reason }, 'etcd prefix read again');
    this.pending = {
      entries: new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value])),
      revision: this.revision,
      full: true,
      firstHintAt: this.pending?.firstHintAt ?? performance.now(),
      reasons: new Set([...(this.pending?.reasons ?? []), reason]),
      settle: [...(this.pending?.settle ?? []), ...waiters.map((w) => w.resolve)],
    };
    this.wake?.();
  }

  /** Events grouped by revision, in order; each revision lands whole in the pending batch. */
  private onData(res: IWatchResponse): void {
    // etcd3 rethrows a listener's exception outside any stream: this must never throw.
    try {
      if (res.events.length === 0) return; // progress notification: says nothing about our keys
      const now = performance.now();
      for (const ev of res.events) {
        // Already read (a replay overlapping a full read or an earlier stream): no duplicate.
        if (BigInt(ev.kv.mod_revision) <= this.revision) continue;
        this.pending ??= { entries: new Map(), revision: this.revision, full: false, firstHintAt: now, reasons: new Set(['event']), settle: [] };
        this.pending.entries.set(ev.kv.key.toString(), ev.type === 'Delete' ? null : ev.kv.value);
        this.pending.reasons.add('event');
      }
      // The events of one response are complete revisions (etcd never splits a revision without `fragment`).
      const last = res.events[res.events.length - 1]!;
      const top = BigInt(last.kv.mod_revision);
      if (top > this.revision) {
        this.revision = top;
        if (this.pending) this.pending.revision = top;
      }
      this.wake?.();
    } catch (err) {
      this.log.error({ err }, 'etcd watch event could not be handled; reading the prefix again');
      this.resyncRequested = true;
      this.interrupt?.('resync');
    }
  }

  private setState(state: EtcdConnectionState, error: string | undefined): void {
    this.firstAttempt?.();
    this.firstAttempt = undefined;
    if (this.state === state && this.lastError === error) return;
    if (this.state === 'closed') return;
    const wasDown = this.state === 'disconnected';
    this.state = state;
    this.lastError = error;
    this.since = Date.now();
    if (state === 'connected' && wasDown) this.log.info({ revision: this.revision.toString() }, 'etcd connection restored; resuming after the last revision seen');
  }
}

// ---- push: the guarded writer behind `hotconf push` -------------------------------------------------

export interface PushPlan {
  /** Keys to write, with their new bytes. */
  readonly put: ReadonlyMap<string, Uint8Array>;
  /** Keys to delete (`prune`). */
  readonly remove: readonly string[];
  /** Keys whose value is already what the directory holds. */
  readonly unchanged: readonly string[];
  /** The revision the plan was computed at. */
  readonly revision: string;
  /** mod_revision of every key read under the prefix (the transaction's guard). */
  readonly guard: ReadonlyMap<string, string>;
}

export interface PushResult {
  readonly plan: PushPlan;
  /** The revision of the transaction; undefined when nothing was written. */
  readonly revision: string | undefined;
  /** Transactions tried (1 unless a concurrent writer moved a key in between). */
  readonly attempts: number;
}

/** Conflicting writers kept moving the keys: no transaction could land. */
export class PushConflictError extends EtcdError {}

/**
 * Writes `desired` (key → bytes, every key under the prefix) in one etcd transaction, guarded by the
 * mod_revision of every key it read under the prefix and the absence of every new key, so that a concurrent
 * push can never interleave: if the guard fails, the prefix is read again and the plan recomputed, up to
 * `maxAttempts` times. `prune` deletes the keys under the prefix that `desired` lacks; `dryRun` only plans.
 */
export async function pushEntries(
  client: Etcd3,
  prefix: string,
  desired: ReadonlyMap<string, Uint8Array>,
  options: {
    prune?: boolean;
    dryRun?: boolean;
    /** Transactions tried before giving up with PushConflictError. Default 5. */
    maxAttempts?: number;
    onConflict?: (attempt: number) => void;
    /** Awaited between the read and the transaction (tests put a rival writer there). */
    beforeCommit?: (plan: PushPlan) => Promise<void>;
  } = {},
): Promise<PushResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const res = await client.getAll().prefix(prefix).exec();
    const current = new Map(res.kvs.map((kv) => [kv.key.toString(), kv]));
    const put = new Map<string, Uint8Array>();
    const unchanged: string[] = [];
    for (const [key, bytes] of desired) {
      const kv = current.get(key);
      if (kv && Buffer.compare(kv.value, bytes) === 0) unchanged.push(key);
      else put.set(key, bytes);
    }
    const remove = options.prune ? [...current.keys()].filter((k) => !desired.has(k)).sort() : [];
    const plan: PushPlan = {
      put,
      remove,
      unchanged: unchanged.sort(),
      revision: res.header.revision,
      guard: new Map([...current].map(([k, kv]) => [k, kv.mod_revision])),
    };
    if (options.dryRun || (put.size === 0 && remove.length === 0)) return { plan, revision: undefined, attempts: attempt };
    await options.beforeCommit?.(plan);
    // Guard: every key read still has the mod_revision it was read at (a deleted one fails too), every new key is
    // still absent, and no key under the prefix was written after the read: the prefix is exactly as planned.
    const cmp: ICompare[] = [...current.entries()].map(([k, kv]) => ({ key: Buffer.from(k), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }));
    for (const k of put.keys()) if (!current.has(k)) cmp.push({ key: Buffer.from(k), target: 'Create', result: 'Equal', create_revision: '0' });
    cmp.push({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), target: 'Mod', result: 'Less', mod_revision: (BigInt(res.header.revision) + 1n).toString() });
    const txn = await client.kv.txn({
      compare: cmp,
      success: [
        ...[...put].map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })),
        ...remove.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
      ],
      failure: [],
    });
    if (txn.succeeded) return { plan, revision: txn.header.revision, attempts: attempt };
    if (attempt >= maxAttempts) {
      throw new PushConflictError(
        'E_PUSH_CONFLICT',
        `etcd: the keys under ${prefix} kept changing during the push (${attempt} attempts); nothing was written by this push`,
      );
    }
    options.onConflict?.(attempt);
  }
}

/** The end of the key range of `prefix` (etcd's `--prefix`): the prefix with its last byte incremented. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
