import { describe, expect, it } from 'vitest';
import { chooseCanary, decideRollout, encodeManifest, fleetKeys, LAYOUT_FORMAT, MANIFEST_PART_BYTES, releaseOfKey, targetOf, type Head, type InstanceRecord } from '../../src/source/etcd/layout.js';

const head = (over: Partial<Head> = {}): Head => ({ format: LAYOUT_FORMAT, stable: 3, canary: null, updatedAt: 0, by: 't', reason: 'push', ...over });
const inst = (id: string, over: Partial<InstanceRecord> = {}): InstanceRecord => ({
  id, release: 4, target: 4, state: 'ok', errors: 0, appliedAt: 1_000, seenAt: 1_000, startedAt: 0, host: 'h', pid: 1, hotconf: '0', ...over,
});

describe('fleet layout', () => {
  it('names release keys with ten digits and reads them back; other keys are not releases', () => {
    const k = fleetKeys('/p/');
    expect(k.release(42)).toBe('/p/.hotconf/releases/0000000042');
    expect(releaseOfKey('/p/', k.release(42))).toBe(42);
    expect(releaseOfKey('/p/', k.head)).toBeUndefined();
    expect(k.instance('a/b c')).toBe('/p/.hotconf/instances/a%2Fb%20c');
  });

  it('chooses the same canary whatever the order of the instances, by count or percentage', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `pod-${i}`);
    const two = chooseCanary(ids, '2');
    expect(two).toHaveLength(2);
    expect(chooseCanary([...ids].reverse(), '2')).toEqual(two);
    expect(chooseCanary(ids, '10%')).toEqual(two);
    expect(chooseCanary(ids, '1%')).toHaveLength(1);
    expect(chooseCanary(ids, '100%')).toHaveLength(20);
    expect(() => chooseCanary(ids, 'two')).toThrow(/number of instances/);
    expect(() => chooseCanary(ids, '150%')).toThrow(/at most 100%/);
  });

  it('sends canary ids to the canary release and the rest to stable', () => {
    const h = head({ canary: { release: 4, ids: ['a'], startedAt: 0 } });
    expect(targetOf(h, 'a')).toBe(4);
    expect(targetOf(h, 'b')).toBe(3);
  });

  it('splits a large manifest into parts under the limit; its sha does not depend on the split or order', () => {
    const entries = new Map(Array.from({ length: 20_000 }, (_, i) => [`dir${i % 50}/config-${i}.yaml`, { sha: 'f'.repeat(64), size: i }] as const));
    const { sha, parts } = encodeManifest(entries);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MANIFEST_PART_BYTES);
    const back = Object.assign({}, ...parts.map((p) => (JSON.parse(p) as { entries: object }).entries)) as Record<string, unknown>;
    expect(Object.keys(back)).toHaveLength(20_000);
    expect(encodeManifest(new Map([...entries].reverse())).sha).toBe(sha);
  });

  it('decides an automatic rollout: abort on a refusal, wait while baking, promote after the bake', () => {
    const h = head({ canary: { release: 4, ids: ['a', 'b'], auto: { bakeMs: 10_000 }, startedAt: 0 } });
    expect(decideRollout(head(), [], 0).action).toBe('none');
    expect(decideRollout(h, [inst('a'), inst('b', { release: 3, state: 'error', errors: 2 })], 2_000)).toMatchObject({ action: 'abort', why: expect.stringMatching(/instance b refused release 4 \(2 errors\)/) as unknown });
    expect(decideRollout(h, [inst('a')], 20_000)).toMatchObject({ action: 'wait', why: 'b not seen' });
    expect(decideRollout(h, [inst('a'), inst('b')], 5_000)).toMatchObject({ action: 'wait' });
    expect(decideRollout(h, [inst('a'), inst('b', { release: 3 })], 50_000)).toMatchObject({ action: 'wait', why: 'b on release 3' });
    expect(decideRollout(h, [inst('a'), inst('b')], 11_000).action).toBe('promote');
  });
});
