// The application check (the `check` hook): it sees the candidate version, refuses it like a schema error under
// either policy, its words are bounded, escaped and free of secrets, and a cross-file rule converges.
import { describe, expect, test } from 'vitest';
import type { Candidate } from '../../src/index.js';
import { InitialLoadError } from '../../src/index.js';
import { boundOutput } from '../../src/pipeline/index.js';
import { start, world } from '../hotconf/fixtures.js';
import { until } from '../helpers.js';

/** A rule across two configs: `a.port` and `b.port` must differ. */
function portsDiffer(seen: Candidate[]) {
  return (c: Candidate) => {
    seen.push(c);
    const a = c.get('a') as { port: number } | undefined;
    const b = c.get('b') as { port: number } | undefined;
    return a && b && a.port === b.port ? [`a and b both use port ${a.port}`] : [];
  };
}

describe.each(['all-or-nothing', 'per-file'] as const)('application check (%s)', (batchPolicy) => {
  test('a refusal keeps the last good version; fixing the other file of a cross-file rule lands both', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: 2\n');
    const seen: Candidate[] = [];
    await using hot = await start(w, { batchPolicy, check: portsDiffer(seen) });
    expect(hot.version).toBe(1);
    expect(seen[0]!.changed).toEqual(['a', 'b']);
    expect(seen[0]!.configs.get('a')!.source).toEqual({ file: 'a.yaml', text: 'port: 1\n' });

    await w.configAtomic('a.yaml', '# now clashing\nport: 2\n');
    await until(() => hot.status().configs.find((c) => c.name === 'a')?.state === 'error', 'a refused');
    const a = hot.status().configs.find((c) => c.name === 'a')!;
    expect(a.error).toMatchObject({ code: 'E_APP_CHECK' });
    expect(a.error!.message).toMatch(/a\.yaml: refused by the application check: a and b both use port 2$/);
    expect(hot.version).toBe(1);
    expect(hot.get('a')).toEqual({ port: 1 });
    expect(seen.at(-1)!.changed).toEqual(['a']);
    expect(seen.at(-1)!.get('b')).toEqual({ port: 2 });

    // The fix is in the other file: the refused change of a is looked at again with it.
    await w.configAtomic('b.yaml', 'port: 3\n');
    await until(() => hot.version === 2, 'both committed in one version');
    expect(hot.get('a')).toEqual({ port: 2 });
    expect(hot.get('b')).toEqual({ port: 3 });
    expect(hot.status().errors).toBe(0);
    expect(hot.snapshot().configs.get('a')!.source).toEqual({ file: 'a.yaml', text: '# now clashing\nport: 2\n' });
  });
});

test('under per-file, a schema-invalid config is not part of the candidate; the valid one is judged and lands', async () => {
  await using w = await world();
  await w.schema('a');
  await w.schema('b');
  await w.config('a.yaml', 'port: 1\n');
  await w.config('b.yaml', 'port: 2\n');
  const seen: Candidate[] = [];
  await using hot = await start(w, { batchPolicy: 'per-file', check: portsDiffer(seen) });
  await w.configAtomic('b.yaml', 'port: nope\n');
  await w.configAtomic('a.yaml', 'port: 5\n');
  await until(() => hot.get('a') !== undefined && (hot.get('a') as { port: number }).port === 5, 'a committed');
  expect(hot.status().configs.find((c) => c.name === 'b')?.error?.code).toBe('E_SCHEMA');
  expect(seen.at(-1)!.get('b')).toEqual({ port: 2 });
});

test('a thrown error refuses too; its words are bounded, escaped, and never hold a secret value', async () => {
  await using w = await world();
  await w.schema('svc');
  await w.config('svc.yaml', 'port: 1\npassword: s3cret-pw\n');
  let fail = false;
  await using hot = await start(w, {
    check: (c) => {
      if (!fail) return;
      const pw = (c.get('svc') as { password: string }).password;
      throw new Error(`bad password ${pw}\n\x1b[31m${'x'.repeat(10_000)}`);
    },
  });
  fail = true;
  await w.configAtomic('svc.yaml', 'port: 2\npassword: other-pw\n');
  await until(() => hot.status().errors === 1, 'refused');
  const e = hot.status().configs[0]!.error!;
  expect(e.code).toBe('E_APP_CHECK');
  expect(e.message).toContain('bad password [REDACTED]\\n\\e[31mxxx');
  expect(e.message).not.toMatch(/other-pw|s3cret-pw/);
  expect(e.message).toMatch(/… \(\d+ more characters\)$/);
  expect(e.message.length).toBeLessThan(4096 + 200);
  expect(JSON.stringify(hot.logs.lines)).not.toMatch(/other-pw/);
  expect(hot.get('svc')).toEqual({ port: 1, password: 's3cret-pw' });
});

test('the candidate cannot be changed by the hook: a write throws, and what commits is what was validated', async () => {
  await using w = await world();
  await w.schema('a');
  await w.config('a.yaml', 'port: 1\n');
  await using hot = await start(w, {
    startWithValid: true,
    check: (c) => {
      (c.get('a') as { port: number }).port = 99;
    },
  });
  expect(hot.status().configs[0]!.error!.message).toMatch(/refused by the application check: Cannot assign to read only property 'port'/);
  expect(hot.get('a')).toBeUndefined();
});

test('a hook that returns something else than a list refuses and says so; null accepts', async () => {
  await using w = await world();
  await w.schema('a');
  await w.config('a.yaml', 'port: 1\n');
  let answer: unknown = null;
  await using hot = await start(w, { check: () => answer as string[] });
  expect(hot.version).toBe(1);
  answer = 42;
  await w.configAtomic('a.yaml', 'port: 2\n');
  await until(() => hot.status().errors === 1, 'refused');
  expect(hot.status().configs[0]!.error!.message).toMatch(/refused by the application check: the check returned number, not a list of problems/);
});

test('a refused initial load rejects start-up like a schema error', async () => {
  await using w = await world();
  await w.schema('a');
  await w.config('a.yaml', 'port: 1\n');
  const err = await start(w, { check: () => ['no'] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InitialLoadError);
  expect((err as InitialLoadError).errors[0]!.code).toBe('E_APP_CHECK');
});

test('the check is not run when a batch changes nothing, and comment-only edits are changes when the source is kept', async () => {
  await using w = await world();
  await w.schema('a');
  await w.config('a.yaml', 'port: 1\n');
  let runs = 0;
  await using hot = await start(w, { check: () => void runs++ });
  expect(runs).toBe(1);
  await hot.reload();
  expect(runs).toBe(1);
  await w.configAtomic('a.yaml', '# a comment\nport: 1\n');
  await until(() => hot.version === 2, 'the comment edit is a version');
  expect(runs).toBe(2);
  expect(hot.snapshot().configs.get('a')!.source!.text).toBe('# a comment\nport: 1\n');
});

test('without check or keepSource, entries keep no source text and comment edits are no version', async () => {
  await using w = await world();
  await w.schema('a');
  await w.config('a.yaml', 'port: 1\n');
  await using hot = await start(w);
  expect(hot.snapshot().configs.get('a')!.source).toBeUndefined();
  await w.configAtomic('a.yaml', '# a comment\nport: 1\n');
  await hot.reload();
  expect(hot.version).toBe(1);
});

test('boundOutput redacts before it cuts, longest secret first', () => {
  expect(boundOutput('pw=abcdef and abc', ['abcdef', 'abc'])).toBe('pw=[REDACTED] and [REDACTED]');
  const out = boundOutput(`${'y'.repeat(10)}abcdef`, ['abcdef'], 12);
  expect(out).toBe('yyyyyyyyyy[R… (8 more characters)');
});
