// What `changes()` returns: the store's committed changes as an async iterator, coalesced for a slow consumer.
import type { Change, Snapshot } from './index.js';

export interface IteratorHooks {
  current(): Snapshot;
  changeBetween(from: Snapshot, to: Snapshot): Change | undefined;
  release(iterator: ChangeIterator): void;
}

/** What changes() returns. Written by hand rather than as an async generator so that close() and abort can end a pending next(). */
export class ChangeIterator implements AsyncIterableIterator<Change, undefined>, AsyncDisposable {
  #lastSeen: Snapshot;
  #done = false;
  readonly #hooks: IteratorHooks;
  /** Resolvers of next() calls waiting for a commit, oldest first. */
  readonly #waiting: ((result: IteratorResult<Change, undefined>) => void)[] = [];

  constructor(start: Snapshot, hooks: IteratorHooks) {
    this.#lastSeen = start;
    this.#hooks = hooks;
  }

  next(): Promise<IteratorResult<Change, undefined>> {
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    const change = this.#take();
    if (change !== undefined) return Promise.resolve({ done: false, value: change });
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  return(): Promise<IteratorResult<Change, undefined>> {
    this.end();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  /** Called by the store after each commit: hands the news to the oldest waiting next(), if any. */
  wake(): void {
    while (this.#waiting.length > 0) {
      const change = this.#take();
      if (change === undefined) return;
      this.#waiting.shift()?.({ done: false, value: change });
    }
  }

  /** Ends the iterator for good: pending and later next() calls resolve done. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    for (const resolve of this.#waiting.splice(0)) resolve({ done: true, value: undefined });
    this.#hooks.release(this);
  }

  #take(): Change | undefined {
    const current = this.#hooks.current();
    if (current.version <= this.#lastSeen.version) return undefined;
    const change = this.#hooks.changeBetween(this.#lastSeen, current);
    this.#lastSeen = current;
    return change;
  }
}
