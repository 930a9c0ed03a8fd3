// Issue 5, section 2: every kind of writer, property-based. fast-check draws sequences of what real writers do
// to a config dir (in-place, atomic and chunked writes, invalid writes, vim.tiny and sed -i, deletes, delete +
// recreate, schema changes, the whole dir removed and recreated, Kubernetes `..data` swaps) and a running
// hotconf must end where the reference model (model.ts) says, with every subscriber and changes() consumer
// on increasing versions that end at the store's. Settling is decided by condition (the store matches the
// model and no batch ran for QUIET_MS), under a generous deadline; nothing is asserted on speed.
//
// HOTCONF_PROPERTY_RUNS=5000 runs thousands; HOTCONF_PROPERTY_SEED=<n> replays a run (each lane uses seed + lane,
// and a failure prints its lane's seed and path for fast-check's `seed` + `path` options).
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { BatchPolicy, Change } from '../../src/index.js';
import { sleep, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { ABSENT, initialWorld, Model, perform, repair, sequenceArb, type Op, type Sequence } from './model.js';

const run = promisify(execFile);

const RUNS = Number(process.env.HOTCONF_PROPERTY_RUNS ?? 200);
const LANES = Math.max(1, Math.min(RUNS, Number(process.env.HOTCONF_PROPERTY_LANES ?? 16)));
const SEED = Number(process.env.HOTCONF_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const DEBOUNCE_MS = 20;
/** No batch for this long, and the store matching the model: settled. */
const QUIET_MS = 100;
const SETTLE_DEADLINE_MS = 20_000;
/** A settle slower than this prints its sequence and the batches it saw (a figure to explain, not a failure). */
const SLOW_SETTLE_MS = 3000;

type Hot = Awaited<ReturnType<typeof start>>;

const figures = { sequences: 0, ops: 0, maxSettleMs: 0, slowest: '', byOp: new Map<string, number>() };

/** The store's state of one name in the model's terms. */
function held(hot: Hot, name: string): number | string {
  const v = hot.get(name) as { n?: unknown } | undefined;
  if (v === undefined) return ABSENT;
  return typeof v.n === 'number' ? v.n : `unexpected value ${JSON.stringify(v)}`;
}

/** '' when the store and status agree with the model, else what differs. */
function mismatch(hot: Hot, model: Model, policy: BatchPolicy): string {
  const problems: string[] = [];
  const status = hot.status();
  for (const name of model.names) {
    const now = held(hot, name);
    const exact = model.exact(name, policy);
    if (exact !== undefined) {
      if (now !== exact) problems.push(`${name}: store ${now}, disk ${exact}`);
    } else if (!model.admissible.get(name)!.has(now as number)) {
      problems.push(`${name}: store ${now}, not one of the last good values [${[...model.admissible.get(name)!].join(', ')}]`);
    }
    const state = status.configs.find((c) => c.name === name)?.state;
    const why = () => {
      const e = status.configs.find((c) => c.name === name)?.error;
      return e ? ` (${e.code}: ${e.message})` : '';
    };
    if (model.disk.get(name) !== undefined && !model.valid(name) && state !== 'error') problems.push(`${name}: invalid on disk, state ${state}`);
    if (exact !== undefined && exact !== ABSENT && state !== 'ok') problems.push(`${name}: applied, state ${state}${why()}`);
  }
  return problems.join('; ');
}

/** Waits until the store matches the model and no batch has run for QUIET_MS; returns the time it took. */
async function settle(hot: Hot, model: Model, policy: BatchPolicy, lastBatchAt: () => number, timeline: readonly string[] = []): Promise<number> {
  const t0 = performance.now();
  try {
    await until(
      () => mismatch(hot, model, policy) === '' && hot.health().batchInFlightMs === undefined && performance.now() - lastBatchAt() >= QUIET_MS,
      'the store to match the model',
      { timeoutMs: SETTLE_DEADLINE_MS, intervalMs: 5 },
    );
  } catch {
    const disk = model.names.map((n) => `${n}=${JSON.stringify(model.disk.get(n))}/schema${model.schema.get(n)}`).join(' ');
    throw new Error(
      `not settled after ${SETTLE_DEADLINE_MS} ms: ${mismatch(hot, model, policy) || 'batches kept running'}\n  model: ${disk}\n  batches:\n    ${timeline.join('\n    ')}`,
    );
  }
  return performance.now() - t0 - QUIET_MS;
}

const increasing = (xs: readonly number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

async function runSequence(seq: Sequence): Promise<void> {
  await using w = await world();
  const model = new Model(seq.layout);
  await initialWorld(w, model);
  await using hot = await start(w, { debounceMs: DEBOUNCE_MS, batchPolicy: seq.policy, verifyIntervalMs: 500 });
  expect(mismatch(hot, model, seq.policy)).toBe('');
  const v0 = hot.version;

  let lastBatchAt = performance.now();
  const commits: number[] = [];
  // What each batch did, for a sequence slow to settle: when, how long, how stale its first hint was.
  const timeline: string[] = [];
  hot.onBatch((r) => {
    lastBatchAt = performance.now();
    if (r.committed) commits.push(r.version);
    timeline.push(`@${Math.round(lastBatchAt)} v${r.version} ${r.committed ? 'commit' : 'no-commit'} changed=${r.changed.join(',')} errors=${r.errors.length} held=${r.held.join(',')} ${r.durationMs}ms latency=${r.latencyMs}ms`);
  });
  // Only valid config is ever applied: every value any subscriber is shown was valid on disk at some point.
  const applied: string[] = [];
  const sync: number[] = [];
  const slow: number[] = [];
  const iterated: number[] = [];
  const audit = (c: Change) => {
    for (const name of model.names) {
      const v = c.current.get(name) as { n?: number } | undefined;
      if (v !== undefined && !model.everValid.get(name)!.has(v.n as number)) applied.push(`v${c.version} ${name}: ${JSON.stringify(v)}`);
    }
  };
  hot.onConfigChange((c) => {
    sync.push(c.version);
    audit(c);
  });
  hot.onConfigChange(async (c) => {
    await sleep(Math.random() * 15); // a slow subscriber: it must get coalesced changes, never an older version
    slow.push(c.version);
  });
  const iterator = hot.changes();
  const consumer = (async () => {
    for await (const c of iterator) {
      iterated.push(c.version);
      if (Math.random() < 0.3) await sleep(10);
    }
  })();

  for (const op of seq.ops) {
    await perform(w, model, op, DEBOUNCE_MS);
    figures.byOp.set(op.op, (figures.byOp.get(op.op) ?? 0) + 1);
  }
  const opsDone = Math.round(performance.now());
  let settleMs = await settle(hot, model, seq.policy, () => lastBatchAt, timeline);
  if (settleMs > SLOW_SETTLE_MS) console.log(`[writers] slow settle ${Math.round(settleMs)} ms after @${opsDone}: ${JSON.stringify(seq)}\n  ${timeline.join('\n  ')}`);
  // The operator fixes whatever is invalid: the store must catch up, exactly, under either policy.
  await repair(w, model);
  timeline.push(`@${Math.round(performance.now())} repair`);
  settleMs = Math.max(settleMs, await settle(hot, model, seq.policy, () => lastBatchAt, timeline));
  for (const name of model.names) expect(held(hot, name), name).toBe(model.exact(name, seq.policy));

  const version = hot.version;
  await until(() => [sync, slow, iterated].every((xs) => (version === v0 ? xs.length === 0 : xs.at(-1) === version)), 'subscribers on the last version', {
    timeoutMs: SETTLE_DEADLINE_MS,
  });
  await iterator.return?.();
  await consumer;
  expect(applied, 'values applied that were never valid on disk').toEqual([]);
  for (const [what, xs] of Object.entries({ commits, sync, slow, iterated })) {
    expect(increasing(xs), `${what} versions ${xs.join(',')}`).toBe(true);
    if (xs.length > 0) expect(xs[0]!, what).toBeGreaterThan(v0);
  }
  expect(commits.at(-1) ?? v0).toBe(version);

  figures.sequences++;
  figures.ops += seq.ops.length;
  if (settleMs > figures.maxSettleMs) {
    figures.maxSettleMs = settleMs;
    figures.slowest = JSON.stringify(seq);
  }
}

describe('every kind of writer (issue 5, section 2)', () => {
  // HOTCONF_PROPERTY_SEQUENCE='<a sequence as JSON, as a failure or the figures print it>' replays it RUNS times.
  const replay = process.env.HOTCONF_PROPERTY_SEQUENCE;
  it.runIf(replay !== undefined)(`replays HOTCONF_PROPERTY_SEQUENCE ${RUNS} times, ${LANES} at once`, { timeout: 600_000 }, async () => {
    const seq = JSON.parse(replay!) as Sequence;
    let next = 0;
    const failures: string[] = [];
    const lane = async () => {
      while (next < RUNS) {
        const i = ++next;
        const before = figures.maxSettleMs;
        await runSequence(seq).catch((err: unknown) => void failures.push(`replay ${i}: ${String(err)}`));
        console.log(`[writers] replay ${i}: max settle so far ${figures.maxSettleMs.toFixed(0)} ms (was ${before.toFixed(0)})`);
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    expect(failures.join('\n')).toBe('');
  });

  it.skipIf(replay !== undefined)(`${RUNS} random sequences of writes end where the model says (seed ${SEED}, ${LANES} lanes)`, { timeout: 600_000 }, async () => {
    const perLane = Array.from({ length: LANES }, (_, i) => Math.floor(RUNS / LANES) + (i < RUNS % LANES ? 1 : 0));
    const results = await Promise.allSettled(
      perLane.map((numRuns, lane) =>
        fc.assert(
          fc.asyncProperty(sequenceArb, async (seq) => runSequence(seq)),
          { numRuns, seed: SEED + lane, endOnFailure: process.env.CI === 'true' },
        ),
      ),
    );
    const failures = results.flatMap((r, lane) =>
      r.status === 'rejected' ? [`lane ${lane} (seed ${SEED + lane}): ${String(r.reason)}\ncaused by: ${String((r.reason as Error).cause)}`] : [],
    );
    expect(failures.join('\n\n')).toBe('');
    expect(figures.sequences).toBeGreaterThanOrEqual(RUNS);
  });
});

describe('the real editors behave as the model assumes', () => {
  it('vim.tiny writes in place (it makes no backup, whatever backupcopy says); sed -i renames a temp file over', async () => {
    await using w = await world();
    const file = await w.config('a.yaml', 'n: 1\n');
    const ino = async () => (await stat(file)).ino;
    const before = await ino();
    await run('vim.tiny', ['-Es', '-u', 'NONE', '-i', 'NONE', '-c', '%d', '-c', 's/^$/n: 2/', '-c', 'wq', file]);
    expect(await ino()).toBe(before);
    await run('sed', ['-i', 's/^n: .*/n: 4/', file]);
    expect(await ino()).not.toBe(before);
    expect(await readFile(file, 'utf8')).toBe('n: 4\n');
    expect(await readdir(w.configDir)).toEqual(['.keep', 'a.yaml']); // no swap, backup or temp file left behind
  });
});

describe('a Kubernetes ..data swap of several files', () => {
  for (const policy of ['all-or-nothing', 'per-file'] as const) {
    it(`is one batch and one version (${policy})`, async () => {
      await using w = await world();
      const model = new Model('k8s');
      await initialWorld(w, model);
      await using hot = await start(w, { debounceMs: DEBOUNCE_MS, batchPolicy: policy });
      const seen: Change[] = [];
      hot.onConfigChange((c) => void seen.push(c));
      const v0 = hot.version;
      const op: Op = { op: 'k8s-swap', payload: ['valid', 'valid', 'valid'], pauseMs: 0 };
      await perform(w, model, op, DEBOUNCE_MS);
      await until(() => model.names.every((n) => held(hot, n) === model.exact(n, policy)), 'all three applied');
      await sleep(QUIET_MS);
      expect(hot.version).toBe(v0 + 1);
      expect(seen.map((c) => [c.version, c.changed])).toEqual([[v0 + 1, ['a', 'b', 'c']]]);
    });
  }
});

afterAll(() => {
  if (figures.sequences === 0) return;
  const ops = [...figures.byOp].map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`[writers] ${figures.sequences} sequences, ${figures.ops} operations (${ops}); max settle ${figures.maxSettleMs.toFixed(0)} ms`);
  console.log(`[writers] slowest to settle: ${figures.slowest}`);
});
