// diffEntries, the diff behind GET /v1/history: what changed, bounded, secrets never shown.
import { describe, expect, it } from 'vitest';
import { diffEntries, HISTORY_MAX_CHANGES, HISTORY_MAX_NODES, HISTORY_MAX_VALUE_CHARS } from '../../src/http/history.js';
import type { ConfigEntry } from '../../src/store/index.js';

const entry = (value: unknown, secrets: string[] = []): ConfigEntry => ({ name: 'c', value, hash: 'h', path: 'c.yaml', version: 1, secrets });

describe('diffEntries', () => {
  it('lists adds, removes and replaces by pointer (escaped), values as JSON cut to HISTORY_MAX_VALUE_CHARS', () => {
    const long = 'x'.repeat(HISTORY_MAX_VALUE_CHARS * 2);
    const got = diffEntries(entry({ a: 1, 'b/c': [1, 2, 3], gone: true, same: { k: 'v' } }), entry({ a: 2, 'b/c': [1, 5], added: long, same: { k: 'v' } }));
    expect(got).toEqual({
      changes: [
        { pointer: '/a', op: 'replace', from: '1', to: '2' },
        { pointer: '/added', op: 'add', to: `"${long}`.slice(0, HISTORY_MAX_VALUE_CHARS) + '…' },
        { pointer: '/b~1c/1', op: 'replace', from: '2', to: '5' },
        { pointer: '/b~1c/2', op: 'remove', from: '3' },
        { pointer: '/gone', op: 'remove', from: 'true' },
      ],
      truncated: false,
    });
    expect(diffEntries(undefined, entry({ a: 1 }))).toEqual({ changes: [{ pointer: '', op: 'add', to: '{"a":1}' }], truncated: false });
  });

  it('never shows a secret: a changed one is "[REDACTED]" both sides, one inside an added or removed value is redacted', () => {
    const before = entry({ db: { password: 'old-pw-value', user: 'u' }, creds: { token: 't0k-old' } }, ['/creds', '/db/password']);
    const after = entry({ db: { password: 'new-pw-value', user: 'u' }, extra: { creds: 1 } }, ['/db/password']);
    const got = diffEntries(before, after);
    expect(got.changes).toEqual([
      { pointer: '/creds', op: 'remove', from: '"[REDACTED]"' },
      { pointer: '/db/password', op: 'replace', from: '"[REDACTED]"', to: '"[REDACTED]"' },
      { pointer: '/extra', op: 'add', to: '{"creds":1}' },
    ]);
    const added = diffEntries(entry({ a: 1 }), entry({ a: 1, s: { pw: 'hidden-pw' } }, ['/s/pw']));
    expect(added.changes).toEqual([{ pointer: '/s', op: 'add', to: '{"pw":"[REDACTED]"}' }]);
    expect(JSON.stringify([got, added])).not.toMatch(/old-pw|new-pw|t0k-old|hidden-pw/);
    // An unchanged secret is no change.
    expect(diffEntries(before, entry(before.value, before.secrets as string[])).changes).toEqual([]);
  });

  it('keeps at most HISTORY_MAX_CHANGES changes and walks at most HISTORY_MAX_NODES values, saying so', () => {
    const many = (d: number) => Object.fromEntries(Array.from({ length: HISTORY_MAX_CHANGES * 2 }, (_, i) => [`k${String(i).padStart(3, '0')}`, i + d]));
    const got = diffEntries(entry(many(0)), entry(many(1)));
    expect(got.changes).toHaveLength(HISTORY_MAX_CHANGES);
    expect(got.truncated).toBe(true);
    const big = (last: number) => Array.from({ length: HISTORY_MAX_NODES + 10 }, (_, i) => (i === HISTORY_MAX_NODES + 9 ? last : i));
    expect(diffEntries(entry(big(0)), entry(big(-1)))).toEqual({ changes: [], truncated: true });
  });
});
