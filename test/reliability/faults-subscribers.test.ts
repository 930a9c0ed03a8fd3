// RELIABILITY.md section 3, subscriber faults: handlers that throw, reject, never settle, unsubscribe or
// subscribe from inside a call, and handlers that write config files themselves. The pipeline is real
// (files, watcher, store); the promise under test is DESIGN.md point 7: a faulty subscriber harms no one else.
import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/index.js';
import { sleep, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';

const port = (v: unknown) => (v as { port?: number } | undefined)?.port;

/** A subscriber that records the versions it was called with. */
function recording() {
  const versions: number[] = [];
  return { versions, handler: (c: Change) => void versions.push(c.version) };
}

/** Resolves once `read()` has not changed for `quietMs` (checked every 50 ms), returning its last value. */
async function settled<T>(read: () => T, quietMs: number, what: string): Promise<T> {
  let last = read();
  let since = Date.now();
  return until(
    () => {
      const now = read();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs ? { value: now } : undefined;
    },
    what,
    { timeoutMs: 20_000, intervalMs: 50 },
  ).then((r) => r.value);
}

describe('faulty subscribers', { timeout: 60_000 }, () => {
  it('300 throwing, rejecting and never-settling handlers do not delay commits or healthy subscribers over 60 writes; close() stays bounded', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    const hot = await start(w, { closeTimeoutMs: 300 });
    const healthy = recording();
    hot.onConfigChange(healthy.handler);
    let hangingCalls = 0;
    let failingCalls = 0;
    for (let i = 0; i < 100; i++) {
      hot.onConfigChange(() => {
        failingCalls++;
        throw new Error(`sync failure ${i}`);
      });
      hot.onConfigChange(() => {
        failingCalls++;
        return Promise.reject(new Error(`async failure ${i}`));
      });
      hot.onConfigChange(() => {
        hangingCalls++;
        return new Promise<void>(() => undefined);
      });
    }
    const healthyLast = recording();
    hot.onConfigChange(healthyLast.handler); // subscribed after all the faulty ones
    for (let n = 2; n <= 61; n++) {
      await w.configAtomic('app.yaml', `port: ${n}\n`);
      if (n % 10 === 0) await until(() => port(hot.get('app')) === n, `write ${n} applied`);
    }
    await until(() => port(hot.get('app')) === 61, 'the last write applied');
    for (const sub of [healthy, healthyLast]) {
      await until(() => sub.versions.at(-1) === hot.version, 'healthy subscribers reach the store version');
      expect([...sub.versions].sort((a, b) => a - b)).toEqual(sub.versions);
      expect(new Set(sub.versions).size).toBe(sub.versions.length);
    }
    // Each hanging handler was called once and is never called again while its promise is pending.
    expect(hangingCalls).toBe(100);
    // Every failure counted and logged, none lost, none double-counted.
    await until(() => hot.stats.subscriberErrors === failingCalls, 'every failure counted');
    expect(failingCalls).toBeGreaterThanOrEqual(200 * 2);
    expect(hot.logs.lines.filter((l) => l.msg === 'subscriber failed')).toHaveLength(failingCalls);
    const t0 = performance.now();
    await hot.close();
    const closeMs = performance.now() - t0;
    expect(hot.logs.lines.some((l) => l.msg === 'close: subscribers still running, not waiting longer')).toBe(true);
    // Bounded by closeTimeoutMs (300 ms), not by the handlers that never settle: a generous ceiling.
    expect(closeMs).toBeLessThan(10_000);
  });

  it('unsubscribing itself or another, and subscribing new handlers, from inside a handler during a burst', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    const calls = { self: 0, victim: 0 };
    let victimGone = false;
    const offSelf = hot.onConfigChange(() => {
      calls.self++;
      offSelf();
    });
    const offVictim = hot.onConfigChange(() => {
      if (victimGone) throw new Error('called after it was unsubscribed');
      calls.victim++;
    });
    const killer = hot.onConfigChange(() => {
      offVictim();
      victimGone = true;
    });
    // Each call subscribes one more handler; a child must never see a version at or before its birth.
    const children: Array<{ born: number; versions: number[] }> = [];
    const spawner = hot.onConfigChange((c) => {
      if (children.length >= 50) return;
      const child = { born: hot.version, versions: [] as number[] };
      children.push(child);
      hot.onConfigChange((cc) => void child.versions.push(cc.version));
      expect(c.version).toBeLessThanOrEqual(child.born);
    });
    for (let n = 2; n <= 41; n++) await w.configAtomic('app.yaml', `port: ${n}\n`);
    await until(() => port(hot.get('app')) === 41, 'the last write applied');
    await until(() => children.length > 0 && children.every((ch) => ch.versions.at(-1) === hot.version || ch.born === hot.version), 'children caught up');
    expect(calls.self).toBe(1);
    expect(calls.victim).toBeLessThanOrEqual(1);
    for (const ch of children) {
      expect(ch.versions.every((v) => v > ch.born), `a child born at v${ch.born} saw ${ch.versions.join(',')}`).toBe(true);
      expect([...ch.versions].sort((a, b) => a - b)).toEqual(ch.versions);
    }
    expect(hot.stats.subscriberErrors).toBe(0);
    // killer and spawner plus the children are live; self and victim are gone.
    expect(hot.stats.subscribers).toBe(2 + children.length);
    killer();
    spawner();
  });

  it('changes() consumers that break, throw or stop pulling release their iterator and hold nothing back', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    // They act on the first change they get: a burst may well be coalesced into a single version.
    const breaker = (async () => {
      for await (const c of hot.changes()) if (c.version > 0) break;
    })();
    const thrower = (async () => {
      for await (const c of hot.changes()) if (c.version > 0) throw new Error('consumer failed');
    })().catch((err: unknown) => err);
    const stalled = hot.changes();
    const firstPull = stalled.next(); // pulled once, then never again
    const live: number[] = [];
    const follower = (async () => {
      for await (const c of hot.changes()) live.push(c.version);
    })();
    await until(() => hot.stats.iterators === 4, 'four iterators live');
    for (let n = 2; n <= 30; n++) await w.configAtomic('app.yaml', `port: ${n}\n`);
    await until(() => port(hot.get('app')) === 30, 'the last write applied');
    await breaker;
    expect(await thrower).toBeInstanceOf(Error);
    await until(() => live.at(-1) === hot.version, 'the follower reaches the store version');
    // The breaker's and the thrower's iterators are released; the stalled one and the follower remain.
    expect(hot.stats.iterators).toBe(2);
    await hot.close();
    await follower;
    expect((await firstPull).done).toBe(false);
    expect(await stalled.next()).toEqual({ done: true, value: undefined });
  });
});

describe('handlers that write config files (feedback loops)', { timeout: 60_000 }, () => {
  it('a handler mirroring one config into another file settles: same-content writes commit nothing, so the loop ends', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('mirror');
    await w.config('app.yaml', 'port: 1\n');
    await w.config('mirror.yaml', 'port: 1\n');
    await using hot = await start(w);
    let calls = 0;
    // Writes on every change, whatever changed, including its own writes: the naive way.
    hot.onConfigChange(async () => {
      calls++;
      await w.configAtomic('mirror.yaml', `port: ${port(hot.get('app'))}\n`);
    });
    const v0 = hot.version;
    for (let n = 2; n <= 21; n++) {
      await w.configAtomic('app.yaml', `port: ${n}\n`);
      await sleep(20);
    }
    await until(() => port(hot.get('mirror')) === 21, 'the mirror follows');
    const final = await settled(() => hot.version, 1500, 'the loop to go quiet');
    expect(port(hot.get('mirror'))).toBe(21);
    // At most one version for each app write and one for each mirror write that followed it.
    expect(final - v0).toBeLessThanOrEqual(40);
    expect(calls).toBeLessThanOrEqual(final - v0);
  });

  it('two handlers that copy each other’s config (ping-pong) converge on one value and stop', async () => {
    await using w = await world();
    await w.schema('ping');
    await w.schema('pong');
    await w.config('ping.yaml', 'port: 1\n');
    await w.config('pong.yaml', 'port: 1\n');
    await using hot = await start(w);
    hot.onConfigChange('ping', async () => {
      await w.configAtomic('pong.yaml', `port: ${port(hot.get('ping'))}\n`);
    });
    hot.onConfigChange('pong', async () => {
      await w.configAtomic('ping.yaml', `port: ${port(hot.get('pong'))}\n`);
    });
    const v0 = hot.version;
    await w.configAtomic('ping.yaml', 'port: 7\n');
    await until(() => port(hot.get('ping')) === 7 && port(hot.get('pong')) === 7, 'both on 7');
    const final = await settled(() => hot.version, 1500, 'the ping-pong to stop');
    expect(final - v0).toBeLessThanOrEqual(4);
    expect(port(hot.get('ping'))).toBe(7);
    expect(port(hot.get('pong'))).toBe(7);
  });
});
