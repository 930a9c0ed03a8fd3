// The change feed behind GET /v1/events and the long-polls of GET /v1/configs/:name?wait=: one subscription to
// the store, each change written once as a shared SSE chunk to every client, a bounded history for Last-Event-ID
// resume, and the waiters woken by the names they wait on. A client that reads too slowly is dropped.
// Event ids are `<epoch>:<version>`: versions restart at 1 in every process, so an id is only resumed when this
// store issued it; any other (another process's, a bare number, garbage) gets a reset, never a replay.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Hotconf } from '../hotconf.js';
import type { HotconfMetrics } from '../metrics/index.js';
import type { Change, Unsubscribe } from '../store/index.js';

/** What the feed needs of the server's options (see HttpOptions for their meaning and defaults). */
export interface FeedOptions {
  historySize: number;
  heartbeatMs: number;
  clientBufferBytes: number;
}

/** A dropped SSE client gets this long to read its backlog and the `reset` before its socket is destroyed. */
const DROP_GRACE_MS = 5000;
/** On close, SSE clients and requests in flight get this long to finish before their sockets are destroyed. */
export const CLOSE_GRACE_MS = 1000;
const SSE_RETRY_MS = 2000;

interface HistoryEntry {
  /** The version this event brings the client to (its SSE id). */
  readonly version: number;
  /** The version it starts from: several commits may arrive as one coalesced change. */
  readonly from: number;
  readonly chunk: string;
  readonly bytes: number;
}

export type WaitOutcome = 'changed' | 'timeout' | 'closed' | 'disconnected';

/**
 * One subscription to the store feeds everyone: each change becomes one SSE event, written as one shared string
 * to every client and kept in a bounded history for Last-Event-ID resume, and wakes the long-polls of its names.
 */
export class Feed {
  readonly #opts: FeedOptions;
  readonly #metrics: HotconfMetrics;
  readonly #log: Logger;
  readonly #history: HistoryEntry[] = [];
  #historyBytes = 0;
  readonly #clients = new Set<ServerResponse>();
  /** Clients that asked for `problems` events too (`?problems=true`: the status page). */
  readonly #problemClients = new Set<ServerResponse>();
  /** What the last `problems` event said (config, state, since of each config not ok), to send only news. */
  #problemsSeen = '';
  readonly #offBatch: Unsubscribe;
  /** Dropped or closing clients, given a grace period to read before their socket is destroyed. */
  readonly #lingering = new Map<ServerResponse, NodeJS.Timeout>();
  readonly #waiters = new Map<string, Set<(outcome: WaitOutcome) => void>>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #unsubscribe: Unsubscribe;
  /** The version of the last event: what a new client is told it is at. */
  #version: number;
  /** The store's identity, the first half of every event id. */
  readonly #epoch: string;
  #waiting = 0;
  closed = false;

  constructor(hot: Hotconf, metrics: HotconfMetrics, opts: FeedOptions, log: Logger) {
    this.#opts = opts;
    this.#metrics = metrics;
    this.#log = log;
    const snap = hot.snapshot();
    this.#version = snap.version;
    this.#epoch = snap.epoch;
    // Synchronous handler: the store calls it after each commit (or once for several it could not tell apart).
    this.#unsubscribe = hot.onConfigChange((change) => this.#onChange(change));
    // A refused edit commits nothing, so it is no `change`: the clients that want to know hear it as `problems`.
    this.#problemsSeen = problemsOf(hot);
    this.#offBatch = hot.onBatch(() => {
      if (this.#problemClients.size === 0) return;
      const seen = problemsOf(hot);
      if (seen === this.#problemsSeen) return;
      this.#problemsSeen = seen;
      const chunk = `event: problems\ndata: ${JSON.stringify({ epoch: this.#epoch, version: this.#version, errors: hot.status().errors })}\n\n`;
      for (const res of this.#problemClients) if (this.#clients.has(res)) this.#write(res, chunk);
    });
    this.#heartbeat = setInterval(() => this.#broadcast(': keepalive\n\n'), opts.heartbeatMs);
    this.#heartbeat.unref();
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Long-polls waiting now. */
  get longPolls(): number {
    return this.#waiting;
  }

  /** Starts an event stream on a hijacked response: the preamble, then the replay or a hello, then live events. */
  attach(res: ServerResponse, lastEventId: string | undefined, log: Logger, problems = false): void {
    res.on('error', (err) => log.debug({ err }, 'event stream error'));
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      // The stream is the whole connection: ending it closes the socket, so close() never waits on keep-alive.
      Connection: 'close',
      'X-Accel-Buffering': 'no',
    });
    const start = `retry: ${SSE_RETRY_MS}\n\n${lastEventId === undefined ? this.#event('hello', this.#version) : this.#resume(lastEventId)}`;
    res.write(start);
    this.#clients.add(res);
    if (problems) this.#problemClients.add(res);
    this.#metrics.sseClients.inc();
    log.debug({ lastEventId, version: this.#version, clients: this.#clients.size }, 'event stream opened');
    res.on('close', () => {
      this.#problemClients.delete(res);
      if (this.#clients.delete(res)) this.#metrics.sseClients.dec();
      const timer = this.#lingering.get(res);
      if (timer !== undefined) {
        clearTimeout(timer);
        this.#lingering.delete(res);
      }
      log.debug({ clients: this.#clients.size }, 'event stream closed');
    });
  }

  /** Resolves when `name` changes or is removed, after `ms`, when the client goes away, or on close. */
  wait(name: string, ms: number, res: ServerResponse): Promise<WaitOutcome> {
    if (this.closed) return Promise.resolve('closed');
    return new Promise((resolve) => {
      let set = this.#waiters.get(name);
      if (set === undefined) this.#waiters.set(name, (set = new Set()));
      const waiters = set;
      let done = false;
      const finish = (outcome: WaitOutcome): void => {
        if (done) return;
        done = true;
        this.#waiting--;
        this.#metrics.longPolls.dec();
        clearTimeout(timer);
        res.off('close', onClose);
        waiters.delete(finish);
        if (waiters.size === 0 && this.#waiters.get(name) === waiters) this.#waiters.delete(name);
        resolve(outcome);
      };
      const onClose = (): void => finish('disconnected');
      const timer = setTimeout(() => finish('timeout'), ms);
      res.on('close', onClose);
      waiters.add(finish);
      this.#waiting++;
      this.#metrics.longPolls.inc();
    });
  }

  /** Ends every stream and long-poll and stops following the store. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#unsubscribe();
    this.#offBatch();
    clearInterval(this.#heartbeat);
    for (const waiters of [...this.#waiters.values()]) for (const finish of [...waiters]) finish('closed');
    for (const [res, timer] of this.#lingering) {
      clearTimeout(timer);
      res.destroy();
    }
    this.#lingering.clear();
    for (const res of [...this.#clients]) this.#end(res, '', CLOSE_GRACE_MS);
  }

  #onChange(change: Change): void {
    const hashes: Record<string, string> = {};
    for (const name of change.changed) {
      const hash = change.current.configs.get(name)?.hash;
      if (hash !== undefined) hashes[name] = hash;
    }
    const data = JSON.stringify({ epoch: this.#epoch, version: change.version, changed: change.changed, removed: change.removed, hashes });
    const chunk = `id: ${this.#epoch}:${change.version}\nevent: change\ndata: ${data}\n\n`;
    const bytes = Buffer.byteLength(chunk);
    this.#history.push({ version: change.version, from: change.previous.version, chunk, bytes });
    this.#historyBytes += bytes;
    // A replay never exceeds clientBufferBytes (see #resume), so older events than that could never be sent.
    while (this.#history.length > this.#opts.historySize || this.#historyBytes > this.#opts.clientBufferBytes) {
      this.#historyBytes -= this.#history.shift()!.bytes;
    }
    this.#version = change.version;
    this.#broadcast(chunk);
    for (const name of [...change.changed, ...change.removed]) {
      const waiters = this.#waiters.get(name);
      if (waiters !== undefined) for (const finish of [...waiters]) finish('changed');
    }
  }

  #broadcast(chunk: string): void {
    for (const res of this.#clients) this.#write(res, chunk);
  }

  #write(res: ServerResponse, chunk: string): void {
    // Checked before writing, so that one event larger than the limit does not cost a healthy client its
    // stream: only a client that has not taken what it was already given is dropped.
    if (res.writableLength > this.#opts.clientBufferBytes) this.#drop(res);
    else res.write(chunk);
  }

  /** A client that reads too slowly: told to refetch (if it ever reads again), then cut off. */
  #drop(res: ServerResponse): void {
    this.#metrics.sseDropped.inc();
    this.#log.warn(
      { ip: res.socket?.remoteAddress, queuedBytes: res.writableLength, limitBytes: this.#opts.clientBufferBytes },
      'event stream client too slow; dropped',
    );
    this.#end(res, this.#event('reset', this.#version), DROP_GRACE_MS);
  }

  #end(res: ServerResponse, last: string, graceMs: number): void {
    this.#problemClients.delete(res);
    if (this.#clients.delete(res)) this.#metrics.sseClients.dec();
    res.end(last);
    if (res.writableFinished || res.destroyed) return;
    const timer = setTimeout(() => {
      this.#lingering.delete(res);
      res.destroy();
    }, graceMs);
    timer.unref();
    this.#lingering.set(res, timer);
  }

  /** What a client resuming after `lastEventId` is sent: the events it missed, or a reset when they are gone. */
  #resume(lastEventId: string): string {
    const id = parseEventId(lastEventId);
    // An id this store never issued (another process's epoch, a bare number from before ids had an epoch, one
    // from the future, garbage): the client's view cannot be compared with ours, so it must refetch everything.
    if (id === undefined || id.epoch !== this.#epoch || id.version > this.#version) return this.#event('reset', this.#version);
    if (id.version === this.#version) return '';
    const oldest = this.#history[0];
    if (oldest === undefined || oldest.from > id.version) return this.#event('reset', this.#version);
    // The history holds at most clientBufferBytes, so the replay fits in what a client may have queued.
    return this.#history
      .filter((e) => e.version > id.version)
      .map((e) => e.chunk)
      .join('');
  }

  /** hello and reset carry the id too, so that the client's next reconnect resumes from there. */
  #event(type: 'hello' | 'reset', version: number): string {
    return `id: ${this.#epoch}:${version}\nevent: ${type}\ndata: ${JSON.stringify({ epoch: this.#epoch, version })}\n\n`;
  }
}

/** `<epoch>:<version>` as the feed writes it (and as a client sends it back in Last-Event-ID or `after=`); a bare
 *  number has no epoch. undefined for anything else. */
export function parseEventId(text: string): { epoch: string | undefined; version: number } | undefined {
  const m = /^(?:([A-Za-z0-9_-]{1,64}):)?(\d{1,15})$/.exec(text);
  return m === null ? undefined : { epoch: m[1], version: Number(m[2]) };
}

/** The configs that are not plain ok, with their state and since: changes whenever a refusal does. */
function problemsOf(hot: Hotconf): string {
  return JSON.stringify(hot.status().configs.filter((c) => c.state !== 'ok').map((c) => [c.name, c.state, c.since]));
}
