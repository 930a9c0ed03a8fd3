// The small async toolkit every stage and shell shares: bounded concurrency that stops on the first failure,
// deadlines that never leave a timer behind, and an owner that disposes what it holds in reverse order
// (VS Code's DisposableStore), so that a start that fails half-way undoes exactly what it did.
import { HotconfError } from './errors.js';

/**
 * Runs `fn` over `items` with at most `limit` calls in flight; results in input order. After the first failure
 * no new call starts; it rejects with that failure once every started call has settled (nothing runs on behind
 * the caller's back).
 */
export async function mapLimit<T, R>(items: Iterable<T>, limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new HotconfError('E_OPTIONS', `limit must be an integer >= 1, got ${limit}`);
  const list = Array.from(items);
  const results = new Array<R>(list.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < list.length && failure === undefined) {
      const index = next++;
      try {
        results[index] = await fn(list[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, list.length) }, worker));
  if (failure) throw failure.error;
  return results;
}

/**
 * Waits for `promise` at most `ms`: true when it settled (resolved or rejected) in time, false when the deadline
 * came first. Never rejects; the timer is cleared either way. The promise itself goes on; its rejection is
 * observed here, so it never floats.
 */
export async function settleWithin(promise: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (promise === undefined) return true;
  let timer: NodeJS.Timeout | undefined;
  const settled = promise.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

type Resource = AsyncDisposable | Disposable | (() => unknown);

/**
 * Holds resources and disposes them in reverse order of registration, once. A resource is registered where it
 * is created (`owner.add(await open())`), so every start-failure path is the same `await owner.close()`.
 * Every resource is disposed even when one fails; the failures are rethrown together.
 */
export class Owner implements AsyncDisposable {
  #resources: Resource[] = [];
  #closing: Promise<void> | undefined;

  /** Registers `resource` (an async or sync disposable, or a cleanup function) and returns it. Registering on
   *  a closed owner disposes the resource at once. */
  add<R extends Resource>(resource: R): R {
    if (this.#closing) {
      void dispose(resource).catch(() => undefined);
      return resource;
    }
    this.#resources.push(resource);
    return resource;
  }

  /** Forgets `resource` without disposing it (it was closed by other means). */
  delete(resource: Resource): void {
    const i = this.#resources.lastIndexOf(resource);
    if (i >= 0) this.#resources.splice(i, 1);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Disposes everything in reverse order. Idempotent: later calls return the first call's promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const errors: unknown[] = [];
      for (const r of this.#resources.splice(0).reverse()) {
        try {
          await dispose(r);
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, 'several resources failed to close');
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function dispose(r: Resource): Promise<void> {
  if (typeof r === 'function') await r();
  else if (Symbol.asyncDispose in r) await r[Symbol.asyncDispose]();
  else r[Symbol.dispose]();
}
