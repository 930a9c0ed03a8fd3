// The batch queue's policy, with fake timers: debounce restarted by hints, the ceiling of a storm, urgent
// requests, coalescing per key, bounded memory, and requests settled when the consumer is done.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { BatchQueue, type QueuedBatch } from '../../src/source/queue.js';

/** Pulls batches into `got` as the consumer would, one at a time; `hold` keeps the consumer busy. */
function consume<T>(q: BatchQueue<T>) {
  const got: Array<QueuedBatch<T> & { at: number }> = [];
  let release: (() => void) | undefined;
  let busy = false;
  const done = (async () => {
    for await (const b of q) {
      got.push({ ...b, at: performance.now() });
      if (busy) await new Promise<void>((r) => (release = r));
    }
  })();
  return {
    got,
    done,
    hold: () => void (busy = true),
    release: () => {
      busy = false;
      release?.();
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('BatchQueue', () => {
  test('a batch waits for the quiet window, and each restarting hint restarts it', async () => {
    const q = new BatchQueue<string>({ debounceMs: 50, maxBatchDelayMs: 1000 });
    const c = consume(q);
    q.add([['a', 'x']], 'event');
    await vi.advanceTimersByTimeAsync(40);
    q.add([['b', 'y']], 'event');
    await vi.advanceTimersByTimeAsync(40);
    expect(c.got).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10);
    expect(c.got).toHaveLength(1);
    expect([...c.got[0]!.items.keys()]).toEqual(['a', 'b']);
    expect(c.got[0]!.seq).toBe(1);
    q.close();
    await c.done;
  });

  test('a hint that does not restart rides along without pushing the window back', async () => {
    const q = new BatchQueue<string>({ debounceMs: 50 });
    const c = consume(q);
    q.add([['a', 'x']], 'event');
    await vi.advanceTimersByTimeAsync(40);
    q.add([['b', 'y']], 'event', { restarts: false });
    await vi.advanceTimersByTimeAsync(10);
    expect(c.got).toHaveLength(1);
    expect(c.got[0]!.items.size).toBe(2);
    q.close();
    await c.done;
  });

  test('a storm of hints still releases a batch at the ceiling', async () => {
    const q = new BatchQueue<number>({ debounceMs: 50, maxBatchDelayMs: 200 });
    const c = consume(q);
    for (let t = 0; t < 300; t += 20) {
      q.add([[`k${t}`, t]], 'event');
      await vi.advanceTimersByTimeAsync(20);
    }
    expect(c.got.length).toBeGreaterThanOrEqual(1);
    expect(c.got[0]!.at - c.got[0]!.firstHintAt).toBeLessThanOrEqual(200);
    q.close();
    await c.done;
  });

  test('hints for one key coalesce (the later wins, or as merged); memory grows with keys, not hints', async () => {
    const q = new BatchQueue<string>({ debounceMs: 10, merge: (a, b) => (a === 'dir' ? a : b) });
    const c = consume(q);
    for (let i = 0; i < 10_000; i++) q.add([['same', i % 2 ? 'file' : 'dir']], 'event');
    q.add([['other', 'file'], ['other', 'file2']], 'event');
    await vi.advanceTimersByTimeAsync(10);
    expect(c.got).toHaveLength(1);
    expect(Object.fromEntries(c.got[0]!.items)).toEqual({ same: 'dir', other: 'file2' });
    q.close();
    await c.done;
  });

  test('past maxKeys the batch drops its items and says so (the source then looks at everything)', async () => {
    const q = new BatchQueue<boolean>({ debounceMs: 0, maxKeys: 3 });
    const c = consume(q);
    q.add(['a', 'b', 'c', 'd', 'e'].map((k) => [k, true] as const), 'event');
    await vi.advanceTimersByTimeAsync(0);
    expect(c.got[0]!.overflowed).toBe(true);
    expect(c.got[0]!.items.size).toBe(0);
    q.close();
    await c.done;
  });

  test('a request is released at once and resolves when the consumer is done with its batch', async () => {
    const q = new BatchQueue<string>({ debounceMs: 1000 });
    const c = consume(q);
    c.hold();
    let settled = false;
    const req = q.request([['a', 'x']], 'request').then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(c.got).toHaveLength(1);
    expect(settled).toBe(false);
    c.release();
    q.add([['next', 'x']], 'event');
    await vi.advanceTimersByTimeAsync(0);
    await req;
    expect(settled).toBe(true);
    q.close();
    await c.done;
  });

  test('hints that arrive while the consumer is busy go into the next batch', async () => {
    const q = new BatchQueue<string>({ debounceMs: 10 });
    const c = consume(q);
    c.hold();
    q.add([['a', '1']], 'event');
    await vi.advanceTimersByTimeAsync(10);
    q.add([['b', '2']], 'event');
    q.add([['a', '3']], 'event');
    await vi.advanceTimersByTimeAsync(100);
    expect(c.got).toHaveLength(1);
    c.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(c.got).toHaveLength(2);
    expect(Object.fromEntries(c.got[1]!.items)).toEqual({ b: '2', a: '3' });
    q.close();
    await c.done;
  });

  test('replace starts the batch afresh and marks it full', async () => {
    const q = new BatchQueue<string>({ debounceMs: 0 });
    const c = consume(q);
    c.hold();
    q.add([['first', 'x']], 'event', { urgent: true });
    await vi.advanceTimersByTimeAsync(0);
    q.add([['stale', 'x']], 'event', { urgent: true });
    q.add([['all', 'y']], 'request', { urgent: true, replace: true });
    c.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(c.got[1]!.full).toBe(true);
    expect([...c.got[1]!.items.keys()]).toEqual(['all']);
    expect([...c.got[1]!.reasons].sort()).toEqual(['event', 'request']);
    q.close();
    await c.done;
  });

  test('hold() keeps a pending batch longer, never past the ceiling', async () => {
    const q = new BatchQueue<string>({ debounceMs: 10, maxBatchDelayMs: 100 });
    const c = consume(q);
    q.add([['a', 'x']], 'event');
    q.hold(50);
    await vi.advanceTimersByTimeAsync(40);
    expect(c.got).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10);
    expect(c.got).toHaveLength(1);
    q.add([['b', 'x']], 'event');
    q.hold(10_000);
    await vi.advanceTimersByTimeAsync(100);
    expect(c.got).toHaveLength(2);
    q.close();
    await c.done;
  });

  test('a ping alone is released at once; with pending hints it waits for their window', async () => {
    const q = new BatchQueue<string>({ debounceMs: 100 });
    const c = consume(q);
    const alone = q.ping();
    await vi.advanceTimersByTimeAsync(0);
    expect(c.got).toHaveLength(1);
    q.add([['a', 'x']], 'event');
    const along = q.ping();
    await vi.advanceTimersByTimeAsync(50);
    expect(c.got).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(c.got).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(0);
    q.close();
    await Promise.all([alone, along, c.done]);
  });

  test('setTiming applies to the pending batch', async () => {
    const q = new BatchQueue<string>({ debounceMs: 1000 });
    const c = consume(q);
    q.add([['a', 'x']], 'event');
    q.setTiming({ debounceMs: 5 });
    await vi.advanceTimersByTimeAsync(5);
    expect(c.got).toHaveLength(1);
    q.close();
    await c.done;
  });

  test('close() ends the iteration and settles every waiting request; later hints are ignored', async () => {
    const q = new BatchQueue<string>({ debounceMs: 1000 });
    const c = consume(q);
    c.hold();
    const inFlight = q.request([['a', 'x']], 'request');
    await vi.advanceTimersByTimeAsync(0);
    const waiting = q.request([['b', 'x']], 'request');
    q.close();
    c.release();
    await Promise.all([inFlight, waiting, c.done]);
    q.add([['c', 'x']], 'event');
    await expect(q.request([['d', 'x']], 'request')).resolves.toBeUndefined();
    expect(c.got).toHaveLength(1);
  });

  test('onFinished hears each batch once the consumer is done with it, with its duration', async () => {
    const finished: Array<[number, number]> = [];
    const q = new BatchQueue<string>({ debounceMs: 0, onFinished: (b, ms) => finished.push([b.seq, ms]) });
    const c = consume(q);
    c.hold();
    q.add([['a', 'x']], 'verify', { urgent: true });
    await vi.advanceTimersByTimeAsync(30);
    expect(finished).toEqual([]);
    c.release();
    q.close();
    await c.done;
    expect(finished).toEqual([[1, 30]]);
  });
});
