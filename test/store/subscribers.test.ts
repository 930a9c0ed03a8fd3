// onConfigChange: ordering, coalescing, isolation, filters, unsubscribe and close (DESIGN.md points 7 and 8).
import { describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { until } from '../helpers.js';
import { Store, type Change, type EntryInput, type Snapshot } from '../../src/store/index.js';

function entry(name: string, value: unknown): EntryInput {
  return { name, value, hash: JSON.stringify(value), path: `config/${name}.yaml` };
}

/** A pino logger whose lines land in an array, parsed. */
function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/**
 * Commits, then waits until an unfiltered witness subscriber has seen the new version, so that the next commit is
 * a separate delivery rather than coalesced with this one.
 */
async function commitDelivered(store: Store, witness: number[], input: { set?: EntryInput[]; remove?: string[] }) {
  const change = store.commit(input);
  const version = change?.version ?? store.version;
  await until(() => witness.at(-1) === version, `version ${version} delivered`);
}

/** A promise with its resolve function exposed: lets a test hold a handler busy for exactly as long as it wants. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('delivery', () => {
  test('a handler runs after commit() returns, never inside it', async () => {
    const store = new Store();
    let calls = 0;
    store.onConfigChange(() => void calls++);
    store.commit({ set: [entry('a', 1)] });
    expect(calls).toBe(0);
    await until(() => calls === 1, 'the handler call');
  });

  test('a handler gets { version, previous, current, changed, removed } of the commit', async () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1), entry('b', 1)] });
    const seen: Change[] = [];
    store.onConfigChange((c) => void seen.push(c));
    const change = store.commit({ set: [entry('a', 2)], remove: ['b'] });
    await until(() => seen.length === 1, 'one delivery');
    expect(seen[0]).toBe(change);
    expect(seen[0]).toMatchObject({ version: 2, changed: ['a'], removed: ['b'] });
  });

  test('inside a handler, previous and current are whole snapshots of one batch each', async () => {
    const store = new Store();
    const problems: string[] = [];
    let last = 0;
    const whole = (s: Snapshot) => new Set(['a', 'b', 'c'].map((n) => s.get(n))).size === 1;
    store.onConfigChange(async (c) => {
      if (!whole(c.previous) || !whole(c.current)) problems.push(`mixed at ${c.version}`);
      if (store.snapshot().version < c.version) problems.push('store behind its own change');
      last = c.version;
      await Promise.resolve();
    });
    for (let i = 1; i <= 30; i++) {
      store.commit({ set: [entry('a', i), entry('b', i), entry('c', i)] });
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => last === 30, 'the final version');
    expect(problems).toEqual([]);
  });

  test('a subscriber still busy receives the latest version next, never an older one', async () => {
    const store = new Store();
    const busy = gate();
    const versions: number[] = [];
    const previousVersions: number[] = [];
    store.onConfigChange(async (c) => {
      versions.push(c.version);
      previousVersions.push(c.previous.version);
      if (c.version === 1) await busy.promise;
    });
    store.commit({ set: [entry('a', 0)] });
    await until(() => versions.length === 1, 'the first delivery');
    for (let i = 1; i <= 50; i++) store.commit({ set: [entry('a', i), entry(`n${i}`, i)] });
    busy.open();
    await until(() => versions.at(-1) === 51, 'the final version');
    expect(versions).toEqual([1, 51]);
    expect(previousVersions).toEqual([0, 1]);
  });

  test('a coalesced change lists everything that differs between the two snapshots', async () => {
    const store = new Store();
    store.commit({ set: [entry('keep', 1), entry('gone', 1), entry('back', 1)] });
    const busy = gate();
    const seen: Change[] = [];
    store.onConfigChange(async (c) => {
      seen.push(c);
      if (seen.length === 1) await busy.promise;
    });
    store.commit({ set: [entry('first', 1)] });
    await until(() => seen.length === 1, 'the first delivery');
    store.commit({ remove: ['gone', 'back'] });
    store.commit({ set: [entry('back', 1), entry('new', 1)] });
    busy.open();
    await until(() => seen.length === 2, 'the coalesced delivery');
    expect(seen[1]).toMatchObject({ version: 4, changed: ['new'], removed: ['gone'] });
    expect(seen[1]?.previous.version).toBe(2);
  });

  test('a slow async handler across 50 rapid commits sees strictly increasing versions and ends on the last', async () => {
    const store = new Store();
    const versions: number[] = [];
    let inFlight = 0;
    let overlapped = false;
    store.onConfigChange(async (c) => {
      if (inFlight++ > 0) overlapped = true;
      versions.push(c.version);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
    });
    for (let i = 1; i <= 50; i++) {
      store.commit({ set: [entry('a', i)] });
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => versions.at(-1) === 50, 'the final version');
    expect(overlapped).toBe(false);
    expect(versions.every((v, i) => i === 0 || v > (versions[i - 1] ?? 0))).toBe(true);
    expect(versions.length).toBeLessThan(50);
  });

  test('a net-zero coalesced change (a name added and removed again) is not delivered', async () => {
    const store = new Store();
    const busy = gate();
    const versions: number[] = [];
    store.onConfigChange(async (c) => {
      versions.push(c.version);
      if (c.version === 1) await busy.promise;
    });
    store.commit({ set: [entry('a', 1)] });
    await until(() => versions.length === 1, 'the first delivery');
    store.commit({ set: [entry('tmp', 1)] });
    store.commit({ remove: ['tmp'] });
    busy.open();
    store.commit({ set: [entry('b', 1)] });
    await until(() => versions.at(-1) === 4, 'the version that changed something');
    expect(versions).toEqual([1, 4]);
  });

  test('a commit that changes nothing notifies no one', async () => {
    const store = new Store();
    const versions: number[] = [];
    store.onConfigChange((c) => void versions.push(c.version));
    await commitDelivered(store, versions, { set: [entry('a', 1)] });
    expect(store.commit({ set: [entry('a', 1)] })).toBeUndefined();
    expect(store.commit({ set: [entry('a', 1)], sourceRevision: 'r2' })).toBeUndefined();
    await commitDelivered(store, versions, { set: [entry('a', 2)] });
    expect(versions).toEqual([1, 2]);
  });
});

describe('isolation', () => {
  test('a throwing handler and a rejecting one are logged and counted, and harm no one else', async () => {
    const { logger, lines } = captureLogger();
    const reported: unknown[] = [];
    const store = new Store({ logger, onSubscriberError: (err) => reported.push(err) });
    let throwCalls = 0;
    let rejectCalls = 0;
    const good: number[] = [];
    store.onConfigChange(() => {
      throwCalls++;
      throw new Error('sync boom');
    });
    store.onConfigChange(async () => {
      rejectCalls++;
      await Promise.resolve();
      throw new Error('async boom');
    });
    store.onConfigChange((c) => void good.push(c.version));
    store.commit({ set: [entry('a', 1)] });
    await until(() => store.stats.subscriberErrors === 2, 'two failures counted');
    store.commit({ set: [entry('a', 2)] });
    await until(() => store.stats.subscriberErrors === 4, 'the failing ones called again');
    await until(() => good.length === 2, 'the good handler');
    expect(good).toEqual([1, 2]);
    expect([throwCalls, rejectCalls]).toEqual([2, 2]);
    expect(reported.map((e) => (e as Error).message).sort()).toEqual(['async boom', 'async boom', 'sync boom', 'sync boom']);
    const failures = lines.filter((l) => l.msg === 'subscriber failed');
    expect(failures).toHaveLength(4);
    expect(failures[0]).toMatchObject({ level: 50, version: 1, err: { message: expect.any(String) as unknown } });
  });

  test('a throwing selector counts as a failure of that subscriber only', async () => {
    const store = new Store();
    const good: number[] = [];
    store.onConfigChange(
      () => {
        throw new Error('bad selector');
      },
      () => undefined,
    );
    store.onConfigChange((c) => void good.push(c.version));
    store.commit({ set: [entry('a', 1)] });
    await until(() => good.length === 1 && store.stats.subscriberErrors === 1, 'one delivery and one failure');
  });

  test('a failing onSubscriberError hook does not stop deliveries', async () => {
    const store = new Store({
      onSubscriberError: () => {
        throw new Error('metrics down');
      },
    });
    const versions: number[] = [];
    store.onConfigChange((c) => {
      versions.push(c.version);
      throw new Error('boom');
    });
    store.commit({ set: [entry('a', 1)] });
    store.commit({ set: [entry('a', 2)] });
    await until(() => versions.at(-1) === 2, 'version 2');
  });

  test('a never-resolving handler delays no one, and close() returns within closeTimeoutMs', async () => {
    const { logger, lines } = captureLogger();
    const store = new Store({ logger, closeTimeoutMs: 200 });
    let hangingCalls = 0;
    store.onConfigChange(() => {
      hangingCalls++;
      return new Promise<void>(() => undefined);
    });
    const good: number[] = [];
    store.onConfigChange((c) => void good.push(c.version));
    for (let i = 1; i <= 5; i++) {
      store.commit({ set: [entry('a', i)] });
      await until(() => good.at(-1) === i, `version ${i}`);
    }
    expect(hangingCalls).toBe(1);
    const started = Date.now();
    await store.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ running: 1, timeoutMs: 200 });
  });

  test('close() waits for a handler in flight that finishes in time, and leaves no timer behind', async () => {
    const store = new Store({ closeTimeoutMs: 5000 });
    const busy = gate();
    let finished = false;
    store.onConfigChange(async () => {
      await busy.promise;
      finished = true;
    });
    store.commit({ set: [entry('a', 1)] });
    await new Promise((r) => setImmediate(r));
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timersBefore = timers();
    const closed = store.close();
    busy.open();
    await closed;
    expect(finished).toBe(true);
    expect(store.stats.subscribers).toBe(0);
    expect(timers()).toBe(timersBefore);
  });
});

describe('subscribing and unsubscribing', () => {
  test('a handler may unsubscribe itself and is never called again', async () => {
    const store = new Store();
    let calls = 0;
    const unsubscribe = store.onConfigChange(() => {
      calls++;
      unsubscribe();
    });
    const other: number[] = [];
    store.onConfigChange((c) => void other.push(c.version));
    store.commit({ set: [entry('a', 1)] });
    store.commit({ set: [entry('a', 2)] });
    await until(() => other.at(-1) === 2, 'the other subscriber at version 2');
    store.commit({ set: [entry('a', 3)] });
    await until(() => other.at(-1) === 3, 'the other subscriber at version 3');
    expect(calls).toBe(1);
    expect(store.stats.subscribers).toBe(1);
  });

  test('an unsubscribed handler is not called even when a coalesced delivery was pending', async () => {
    const store = new Store();
    const busy = gate();
    const versions: number[] = [];
    const unsubscribe = store.onConfigChange(async (c) => {
      versions.push(c.version);
      await busy.promise;
    });
    const other: number[] = [];
    store.onConfigChange((c) => void other.push(c.version));
    store.commit({ set: [entry('a', 1)] });
    await until(() => versions.length === 1, 'the first delivery');
    store.commit({ set: [entry('a', 2)] });
    unsubscribe();
    unsubscribe();
    busy.open();
    store.commit({ set: [entry('a', 3)] });
    await until(() => other.at(-1) === 3, 'the other subscriber at version 3');
    await new Promise((r) => setImmediate(r));
    expect(versions).toEqual([1]);
  });

  test('a handler may subscribe another, which hears from the next commit on', async () => {
    const store = new Store();
    const inner: number[] = [];
    let subscribed = false;
    store.onConfigChange(() => {
      if (subscribed) return;
      subscribed = true;
      store.onConfigChange((c) => void inner.push(c.version));
    });
    store.commit({ set: [entry('a', 1)] });
    await until(() => subscribed, 'the inner subscription');
    store.commit({ set: [entry('a', 2)] });
    await until(() => inner.length === 1, 'the inner delivery');
    expect(inner).toEqual([2]);
  });

  test('`using` an Unsubscribe ends the subscription at the end of the block', async () => {
    const store = new Store();
    const disposed: number[] = [];
    const kept: number[] = [];
    store.onConfigChange((c) => void kept.push(c.version));
    {
      using _subscription = store.onConfigChange((c) => void disposed.push(c.version));
      expect(store.stats.subscribers).toBe(2);
    }
    expect(store.stats.subscribers).toBe(1);
    store.commit({ set: [entry('a', 1)] });
    await until(() => kept.length === 1, 'the kept subscriber');
    expect(disposed).toEqual([]);
  });

  test('subscribing after close() throws E_CLOSED', async () => {
    const store = new Store();
    await store.close();
    expect(() => store.onConfigChange(() => undefined)).toThrow(expect.objectContaining({ code: 'E_CLOSED' }));
  });
});

describe('filters', () => {
  test('a name filter is called only for changes that touch that name, removal included', async () => {
    const store = new Store();
    const versions: number[] = [];
    const all: number[] = [];
    store.onConfigChange('app', (c) => void versions.push(c.version));
    store.onConfigChange((c) => void all.push(c.version));
    await commitDelivered(store, all, { set: [entry('db', 1)] });
    await commitDelivered(store, all, { set: [entry('app', 1)] });
    await commitDelivered(store, all, { set: [entry('db', 2)] });
    await commitDelivered(store, all, { remove: ['app'] });
    expect(versions).toEqual([2, 4]);
  });

  test('a list filter is called for changes that touch any of its names', async () => {
    const store = new Store();
    const versions: number[] = [];
    const all: number[] = [];
    store.onConfigChange(['a', 'b'], (c) => void versions.push(c.version));
    store.onConfigChange((c) => void all.push(c.version));
    await commitDelivered(store, all, { set: [entry('a', 1)] });
    await commitDelivered(store, all, { set: [entry('c', 1)] });
    await commitDelivered(store, all, { set: [entry('b', 1)] });
    await commitDelivered(store, all, { set: [entry('c', 2)] });
    expect(versions).toEqual([1, 3]);
  });

  test('a filter judges the coalesced change: a name added and removed within one span is not reported', async () => {
    const store = new Store();
    const versions: number[] = [];
    const all: number[] = [];
    store.onConfigChange('app', (c) => void versions.push(c.version));
    store.onConfigChange((c) => void all.push(c.version));
    store.commit({ set: [entry('app', 1)] });
    store.commit({ set: [entry('db', 1)] });
    store.commit({ remove: ['app'] });
    await until(() => all.at(-1) === 3, 'the coalesced delivery');
    expect(versions).toEqual([]);
  });

  test('a selector filter is called only when its result differs (deep equality)', async () => {
    const store = new Store();
    const ports: unknown[] = [];
    const all: number[] = [];
    const port = (s: Snapshot) => (s.get('app') as { server?: { port: number } } | undefined)?.server;
    store.onConfigChange(port, (c) => void ports.push(port(c.current)));
    store.onConfigChange((c) => void all.push(c.version));
    await commitDelivered(store, all, { set: [entry('app', { server: { port: 80 }, debug: false })] });
    await commitDelivered(store, all, { set: [entry('app', { server: { port: 80 }, debug: true })] });
    await commitDelivered(store, all, { set: [entry('other', 1)] });
    await commitDelivered(store, all, { set: [entry('app', { server: { port: 81 }, debug: true })] });
    expect(ports).toEqual([{ port: 80 }, { port: 81 }]);
  });
});
