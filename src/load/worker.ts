// Large files are parsed off the main thread. yaml parses at ~1.5 s per MB, and nothing in a synchronous parse
// yields: a 5 MB config would freeze the host application for seconds. ConfigParser parses small files in
// process and sends larger ones to one lazily started worker thread, which runs the very same parseConfig
// (every rule of DESIGN.md point 9 holds there) and hands the value back in bounded pieces, one per turn of the
// event loop, so that no single step on the main thread is long. This file is also the worker's entry point.
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { HotconfError, ParseError, ReadError, type HotconfErrorCode } from '../errors.js';
import type { ConfigFormat } from '../names.js';
import { locateInJson } from './json-locate.js';
import { parseConfig, type ParsedConfig, type ParseOptions, type Position } from './parse.js';

export interface ConfigParserOptions {
  /**
   * Files larger than this many bytes are parsed in a worker thread; smaller ones on the calling thread, where
   * they cost less than a worker round trip. Default 65,536 (64 KiB: ~100 ms of YAML or ~1 ms of JSON parsing).
   * `Infinity` never uses a worker.
   */
  workerThresholdBytes?: number;
}

/** A position request for {@link OffThreadParsed.locateAll}. */
export interface LocateRequest {
  readonly pointer: string;
  readonly key?: boolean;
}

/** A parsed config that can also resolve many positions without blocking (the worker re-reads the document). */
export interface OffThreadParsed extends ParsedConfig {
  locateAll(requests: readonly LocateRequest[]): Promise<Array<Position | undefined>>;
}

export const DEFAULT_WORKER_THRESHOLD_BYTES = 65_536;

/** Weight of one piece of a value sent back from the worker: nodes, plus string length / 64. ~5 ms to rebuild. */
const PIECE_WEIGHT = 16_384;

// ------------------------------------------------------------------------------------------ wire format

interface ParseRequest {
  readonly op: 'parse' | 'locate';
  readonly id: number;
  readonly bytes: Uint8Array;
  readonly format: ConfigFormat;
  readonly displayPath: string;
  readonly options: ParseOptions;
  readonly requests?: readonly LocateRequest[];
}
type Request = ParseRequest | { readonly op: 'next'; readonly id: number };

type Key = string | number;
/** Builds the value: `shell` creates an empty container at `at` (the root when `at` is empty); `entries` fill one. */
type Piece =
  | { readonly kind: 'whole'; readonly value: unknown }
  | { readonly kind: 'shell'; readonly at: readonly Key[]; readonly array: boolean }
  | { readonly kind: 'entries'; readonly at: readonly Key[]; readonly entries: ReadonlyArray<readonly [Key, unknown]> };

interface WireError {
  readonly cls: string;
  readonly code: HotconfErrorCode | undefined;
  readonly message: string;
  readonly file?: string;
  readonly line?: number | undefined;
  readonly col?: number | undefined;
  readonly pointer?: string | undefined;
  readonly detail?: string;
}

/** The request's bytes come back (moved) with the first reply about them. */
type Reply = { readonly bytes?: Uint8Array } & (
  | { readonly id: number; readonly kind: 'piece'; readonly piece: Piece; readonly done: boolean }
  | { readonly id: number; readonly kind: 'positions'; readonly positions: Array<Position | undefined> }
  | { readonly id: number; readonly kind: 'error'; readonly error: WireError }
);

// ------------------------------------------------------------------------------------------- main side

interface Job {
  readonly resolve: (reply: Reply) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Parses config bytes with {@link parseConfig}'s rules, in process or in a worker thread by size. Owns its worker:
 * `close()` terminates it (idempotent); the worker does not keep the process alive while idle.
 */
export class ConfigParser implements AsyncDisposable {
  readonly workerThresholdBytes: number;
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private closed = false;
  /** Workers let go after a large locate: their exit fails no job. */
  private readonly retired = new WeakSet<Worker>();

  constructor(options: ConfigParserOptions = {}) {
    const threshold = options.workerThresholdBytes ?? DEFAULT_WORKER_THRESHOLD_BYTES;
    if (!(threshold >= 0)) throw new HotconfError('E_OPTIONS', `workerThresholdBytes must be a number >= 0, got ${threshold}`);
    this.workerThresholdBytes = threshold;
  }

  /**
   * Same result and same errors as `parseConfig(bytes, format, displayPath, options)`. Bytes over the threshold
   * are moved to the worker, not copied (copying megabytes on this thread costs tens of ms in allocation and
   * GC): a Buffer that owns its whole ArrayBuffer is detached (empty) afterwards.
   */
  async parse(bytes: Buffer, format: ConfigFormat, displayPath: string, options: ParseOptions = {}): Promise<ParsedConfig> {
    if (bytes.length <= this.workerThresholdBytes) return parseConfig(bytes, format, displayPath, options);
    return this.parseOffThread(bytes, format, displayPath, options);
  }

  /** Always in the worker, whatever the size. */
  async parseOffThread(bytes: Buffer, format: ConfigFormat, displayPath: string, options: ParseOptions = {}): Promise<OffThreadParsed> {
    const base = { format, displayPath, options: { ...options } };
    // The bytes travel to the worker and come back with its last reply, ready for a later locateAll.
    let held: Uint8Array = bytes;
    const root = { value: undefined as unknown };
    const at = (path: readonly Key[]): Record<Key, unknown> => {
      let node: unknown = root.value;
      for (const k of path) node = (node as Record<Key, unknown>)[k];
      return node as Record<Key, unknown>;
    };
    const id = this.nextId++;
    for (let reply = await this.send({ op: 'parse', id, bytes: held, ...base }); ; reply = await this.send({ op: 'next', id })) {
      if (reply.bytes) held = reply.bytes;
      if (reply.kind === 'error') throw fromWire(reply.error);
      if (reply.kind !== 'piece') throw new HotconfError('E_PARSE', `${displayPath}: unexpected reply from the parser worker`);
      const { piece } = reply;
      if (piece.kind === 'whole') {
        root.value = piece.value;
      } else if (piece.kind === 'shell') {
        const empty = piece.array ? [] : {};
        if (piece.at.length === 0) root.value = empty;
        else place(at(piece.at.slice(0, -1)), piece.at[piece.at.length - 1]!, empty);
      } else {
        const target = at(piece.at);
        for (const [k, v] of piece.entries) place(target, k, v);
      }
      if (reply.done) break;
      // One piece per turn of the event loop: timers and I/O of the host run between pieces.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const value = root.value;
    let inProcess: ParsedConfig | undefined;
    let queue = Promise.resolve<unknown>(undefined);
    const locateAll = async (requests: readonly LocateRequest[]): Promise<Array<Position | undefined>> => {
      if (requests.length === 0) return [];
      const reply = await this.send({ op: 'locate', id: this.nextId++, bytes: held, ...base, requests: [...requests] });
      if (reply.bytes) held = reply.bytes;
      this.retire();
      return reply.kind === 'positions' ? reply.positions : requests.map(() => undefined);
    };
    return {
      value,
      // Synchronous callers get positions the slow way (parsing again here); locateAll asks the worker.
      locate: (pointer, opts) =>
        (inProcess ??= parseConfig(Buffer.from(held.buffer, held.byteOffset, held.byteLength), format, displayPath, options)).locate(pointer, opts),
      // One at a time: the bytes are away while the worker holds them.
      locateAll: (requests) => {
        const result = queue.then(() => locateAll(requests));
        queue = result.catch(() => undefined);
        return result;
      },
    };
  }

  private send(request: Request): Promise<Reply> {
    if (this.closed) return Promise.reject(new HotconfError('E_CLOSED', 'the config parser is closed'));
    const worker = this.start();
    return new Promise<Reply>((resolve, reject) => {
      this.jobs.set(request.id, { resolve, reject });
      worker.ref(); // a pending parse keeps the process alive; an idle worker does not
      worker.postMessage(request, 'bytes' in request ? movable(request.bytes) : []);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(workerUrl(), { workerData: { hotconfParser: true } });
    worker.on('message', (reply: Reply) => {
      const job = this.jobs.get(reply.id);
      this.jobs.delete(reply.id);
      if (this.jobs.size === 0) worker.unref();
      job?.resolve(reply);
    });
    const fail = (err: unknown) => {
      if (this.retired.has(worker)) return;
      // A crashed worker (out of memory…) fails what it held; the next parse starts a new one.
      if (this.worker === worker) this.worker = undefined;
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      for (const job of jobs) job.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new HotconfError(this.closed ? 'E_CLOSED' : 'E_PARSE', `the config parser worker exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /**
   * Lets the idle worker go once it located the errors of a refused document: what a large parse grew its heap
   * to, V8 keeps (a YAML position tree of 1 MiB took ~480 MiB: RSS 180 → 661 MiB, still 656 MiB a second later).
   * Only refused documents are located, so the next large parse rarely pays a fresh worker (tens of ms). A busy
   * worker is kept.
   */
  private retire(): void {
    const worker = this.worker;
    if (!worker || this.jobs.size > 0) return;
    this.worker = undefined;
    this.retired.add(worker);
    worker.terminate().catch(() => undefined);
  }

  /** Terminates the worker; parses in flight reject with E_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The text of JSON bytes that already parsed (valid UTF-8), without its BOM, as the parser saw it. */
function jsonText(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.subarray(3) : buf).toString('utf8');
}

/** The ArrayBuffer behind `bytes` when they are all of it (then it can be moved instead of copied). */
function movable(bytes: Uint8Array): ArrayBuffer[] {
  const { buffer } = bytes;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength ? [buffer] : [];
}

/** Defines a property as JSON.parse and yaml's toJS do (`__proto__` would be refused before it got here). */
function place(target: Record<Key, unknown>, key: Key, value: unknown): void {
  if (Array.isArray(target)) (target as unknown[]).push(value);
  else if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** The worker runs the compiled JS; under a TypeScript runner (tests) this module is .ts, so use the build's. In
 *  the bundled CLI (scripts/bundle-cli.mjs) this code is in dist/cli/: the worker is still dist/load/worker.js. */
function workerUrl(): URL {
  const here = new URL(import.meta.url);
  return new URL(here.pathname.endsWith('.ts') ? '../../dist/load/worker.js' : '../load/worker.js', here);
}

function toWire(err: unknown): WireError {
  if (err instanceof ReadError || err instanceof ParseError) {
    const { code, message, file, line, col, pointer, detail } = err;
    return { cls: err instanceof ReadError ? 'ReadError' : 'ParseError', code, message, file, line, col, pointer, detail };
  }
  if (err instanceof HotconfError) return { cls: 'HotconfError', code: err.code, message: err.message };
  return { cls: 'Error', code: undefined, message: err instanceof Error ? err.message : String(err) };
}

/** The same error class, code, location and message as the worker's, as a real error of this thread. */
function fromWire(w: WireError): Error {
  const location = { file: w.file ?? '', line: w.line, col: w.col, pointer: w.pointer };
  if (w.cls === 'ReadError') return new ReadError(w.code!, location, w.detail ?? w.message);
  if (w.cls === 'ParseError') return new ParseError(w.code!, location, w.detail ?? w.message);
  if (w.cls === 'HotconfError') return new HotconfError(w.code!, w.message);
  return new Error(`config parser worker: ${w.message}`);
}

// ----------------------------------------------------------------------------------------- worker side

/** Splits a value into pieces of bounded weight, in document order (so that keys keep their order). */
function* pieces(value: unknown): Generator<Piece> {
  const weights = new Map<object, number>();
  const weigh = (v: unknown): number => {
    if (typeof v === 'string') return 1 + (v.length >> 6);
    if (typeof v !== 'object' || v === null) return 1;
    let w = 1;
    for (const member of Object.values(v)) w += weigh(member);
    weights.set(v, w);
    return w;
  };
  if (weigh(value) <= PIECE_WEIGHT) {
    yield { kind: 'whole', value };
    return;
  }
  function* split(node: object, at: Key[]): Generator<Piece> {
    const array = Array.isArray(node);
    yield { kind: 'shell', at, array };
    let batch: Array<[Key, unknown]> = [];
    let weight = 0;
    const entries: Array<[Key, unknown]> = array ? (node as unknown[]).map((v, i) => [i, v]) : Object.entries(node);
    for (const [k, v] of entries) {
      const w = (typeof v === 'object' && v !== null ? weights.get(v) : undefined) ?? 1;
      if (w > PIECE_WEIGHT) {
        if (batch.length > 0) yield { kind: 'entries', at, entries: batch };
        [batch, weight] = [[], 0];
        yield* split(v as object, [...at, k]);
        continue;
      }
      if (weight + w > PIECE_WEIGHT && batch.length > 0) {
        yield { kind: 'entries', at, entries: batch };
        [batch, weight] = [[], 0];
      }
      batch.push([k, v]);
      weight += w;
    }
    if (batch.length > 0) yield { kind: 'entries', at, entries: batch };
  }
  yield* split(value as object, []);
}

function serve(port: MessagePort): void {
  // Per parse being handed back: its pieces, and the one already taken (looked ahead to tell the last one).
  const inProgress = new Map<number, { pieces: Iterator<Piece>; ahead: IteratorResult<Piece> }>();
  const sendNext = (id: number, it: Iterator<Piece>, current: IteratorResult<Piece>, bytes?: Uint8Array) => {
    if (current.done) throw new Error('no piece left');
    const ahead = it.next();
    if (ahead.done) inProgress.delete(id);
    else inProgress.set(id, { pieces: it, ahead });
    const reply: Reply = { id, kind: 'piece', piece: current.value, done: ahead.done === true, ...(bytes ? { bytes } : {}) };
    port.postMessage(reply, bytes ? movable(bytes) : []);
  };
  port.on('message', (req: Request) => {
    const bytes = 'bytes' in req ? req.bytes : undefined;
    try {
      if (req.op === 'next') {
        const state = inProgress.get(req.id);
        if (!state) throw new Error(`unknown parse ${req.id}`);
        sendNext(req.id, state.pieces, state.ahead);
        return;
      }
      // JSON that parsed is located by a scan of its text: the position tree of a large document costs hundreds
      // of MiB (json-locate.ts). YAML needs its tree.
      if (req.op === 'locate' && req.format === 'json') {
        const text = jsonText(req.bytes);
        const positions = (req.requests ?? []).map((r) => locateInJson(text, r.pointer, r.key === true));
        port.postMessage({ id: req.id, kind: 'positions', positions, ...(bytes ? { bytes } : {}) } satisfies Reply, bytes ? movable(bytes) : []);
        return;
      }
      const parsed = parseConfig(Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength), req.format, req.displayPath, req.options);
      if (req.op === 'parse') {
        const it = pieces(parsed.value);
        sendNext(req.id, it, it.next(), bytes);
      } else {
        const positions = (req.requests ?? []).map((r) => parsed.locate(r.pointer, { key: r.key === true }));
        port.postMessage({ id: req.id, kind: 'positions', positions, ...(bytes ? { bytes } : {}) } satisfies Reply, bytes ? movable(bytes) : []);
      }
    } catch (err) {
      inProgress.delete(req.id);
      port.postMessage({ id: req.id, kind: 'error', error: toWire(err), ...(bytes ? { bytes } : {}) } satisfies Reply, bytes ? movable(bytes) : []);
    }
  });
}

if (!isMainThread && parentPort && (workerData as { hotconfParser?: unknown } | null)?.hotconfParser === true) {
  serve(parentPort);
}
