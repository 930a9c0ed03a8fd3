// DESIGN.md points 6, 7 and 8 through the public API: cheap frozen reads, isolated subscribers, lifecycle.
import { describe, expect, it } from 'vitest';
import { createHotconf, HotconfError, InitialLoadError, type Change } from '../../src/index.js';
import { until } from '../helpers.js';
import { start, world } from './fixtures.js';

const port = (v: unknown) => (v as { port: number } | undefined)?.port;

describe('reads (point 6)', () => {
  it('get() returns a deep-frozen value; an old snapshot never changes', async () => {
    await using w = await world();
    await w.schema('svc', { type: 'object', properties: { port: { type: 'integer' }, list: { type: 'array' } } });
    await w.config('svc.yaml', 'port: 1\nlist: [{a: 1}]\n');
    await using hot = await start<{ svc: { port: number; list: { a: number }[] } }>(w);
    const value = hot.get('svc')!;
    expect(Object.isFrozen(value)).toBe(true);
    expect(Object.isFrozen(value.list[0])).toBe(true);
    expect(() => {
      (value as { port: number }).port = 2;
    }).toThrow(TypeError);
    const old = hot.snapshot();
    await w.configAtomic('svc.yaml', 'port: 2\nlist: []\n');
    await until(() => hot.get('svc')?.port === 2, 'new value');
    expect(old.get('svc')).toEqual({ port: 1, list: [{ a: 1 }] });
    expect(old.version).toBeLessThan(hot.version);
  });
});

describe('subscribers (point 7)', () => {
  it('a throwing subscriber, a rejecting one and a hanging one harm no one else', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w, { closeTimeoutMs: 200 });
    hot.onConfigChange(() => {
      throw new Error('boom');
    });
    hot.onConfigChange(() => Promise.reject(new Error('nope')));
    hot.onConfigChange(() => new Promise<void>(() => undefined));
    const good: number[] = [];
    hot.onConfigChange('svc', (c) => {
      good.push(port(c.current.get('svc'))!);
    });
    for (let i = 2; i <= 4; i++) {
      await w.configAtomic('svc.yaml', `port: ${i}\n`);
      await until(() => good.at(-1) === i, `good subscriber saw ${i}`);
    }
    await until(() => hot.logs.lines.filter((l) => l.msg === 'subscriber failed').length >= 2, 'failures logged');
  });

  it('a subscriber that unsubscribes inside its handler is never called again', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w);
    let calls = 0;
    const off = hot.onConfigChange(() => {
      calls++;
      off();
    });
    const all: Change[] = [];
    hot.onConfigChange((c) => {
      all.push(c);
    });
    await w.configAtomic('svc.yaml', 'port: 2\n');
    await until(() => all.length === 1, 'first change');
    await w.configAtomic('svc.yaml', 'port: 3\n');
    await until(() => all.length === 2, 'second change');
    expect(calls).toBe(1);
  });

  it('a change carries version, previous, current, changed and removed', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w);
    const changes: Change[] = [];
    hot.onConfigChange('svc', (c) => {
      changes.push(c);
    });
    await w.configAtomic('svc.yaml', 'port: 2\n');
    const c = await until(() => changes[0], 'change');
    expect(c.version).toBe(hot.version);
    expect(c.previous.get('svc')).toEqual({ port: 1 });
    expect(c.current.get('svc')).toEqual({ port: 2 });
    expect(c.changed).toEqual(['svc']);
    expect(c.removed).toEqual([]);
  });
});

describe('changes() (point 7, async iteration)', () => {
  it('yields committed changes in order and ends on close()', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    const hot = await start(w);
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const c of hot.changes()) seen.push(port(c.current.get('svc'))!);
      return 'ended';
    })();
    await w.configAtomic('svc.yaml', 'port: 2\n');
    await until(() => seen.includes(2), 'first change');
    await hot.close();
    await expect(consumer).resolves.toBe('ended');
  });

  it('break in for-await releases the iterator', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w);
    const consumer = (async () => {
      for await (const c of hot.changes()) return c.version;
      return -1;
    })();
    await w.configAtomic('svc.yaml', 'port: 2\n');
    const version = await consumer;
    expect(version).toBe(hot.version);
    expect(version).toBeGreaterThan(1);
  });
});

describe('lifecycle (point 8)', () => {
  it('an invalid initial config rejects with one error listing every problem', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: x\n');
    await w.config('b.yaml', 'port: [\n');
    await w.config('c.yaml', 'port: 1\n'); // no schema
    const err = await start(w).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InitialLoadError);
    const codes = (err as InitialLoadError).errors.map((e) => e.code).sort();
    expect(codes).toEqual(['E_NO_SCHEMA', 'E_PARSE', 'E_SCHEMA']);
    expect((err as Error).message).toMatch(/3 problems/);
  });

  it('startWithValid starts with what is valid and reports the rest', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: x\n');
    await using hot = await start(w, { startWithValid: true });
    expect(hot.get('a')).toEqual({ port: 1 });
    expect(hot.get('b')).toBeUndefined();
    expect(hot.status().errors).toBe(1);
  });

  it('await using closes the watcher and the store', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    let escaped;
    {
      await using hot = await start(w);
      escaped = hot;
      expect(hot.status().ready).toBe(true);
    }
    expect(escaped.status().ready).toBe(false);
    await expect(escaped.reload()).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('aborting the signal closes it', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    const ac = new AbortController();
    const hot = await start(w, { signal: ac.signal });
    ac.abort();
    await until(() => !hot.status().ready, 'closed');
  });

  it('close() waits for handlers in flight, bounded', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    const hot = await start(w, { closeTimeoutMs: 300 });
    let finished = false;
    hot.onConfigChange(async () => {
      await new Promise((r) => setTimeout(r, 100));
      finished = true;
    });
    hot.onConfigChange(() => new Promise<void>(() => undefined)); // never ends: close must not hang
    await w.configAtomic('svc.yaml', 'port: 2\n');
    await until(() => port(hot.get('svc')) === 2, 'committed');
    await hot.close();
    expect(finished).toBe(true);
  });

  it('bad options are refused with a clear error', async () => {
    await expect(createHotconf({ configDir: '' })).rejects.toThrow(/configDir/);
    await expect(createHotconf({ configDir: '/tmp' })).rejects.toThrow(/schemaDir/);
    await expect(createHotconf({ configDir: '/nonexistent-hotconf', requireSchema: false })).rejects.toThrow(/not a directory/);
    await expect(
      createHotconf({ configDir: '/tmp', requireSchema: false, batchPolicy: 'some' as 'per-file' }),
    ).rejects.toBeInstanceOf(HotconfError);
  });
});
