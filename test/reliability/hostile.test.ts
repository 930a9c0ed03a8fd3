// Issue 5, section 1: the hostile-input corpus (test/fixtures/hostile/cases.json) driven through the real
// pipeline. For each case a running hotconf holds a good `svc` config; the hostile file is put in its place
// (or beside it) on disk, and the test waits for the watcher to bring it in. It must be refused with the
// expected code and position, the last good value must stay live, nothing may be polluted, time and memory
// stay bounded (generous ceilings: they catch hangs and explosions, not slowness), and the pipeline must
// still apply the next good write.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { HotconfErrorCode } from '../../src/index.js';
import { until } from '../helpers.js';
import { start, world, type World } from '../hotconf/fixtures.js';

const run = promisify(execFile);
const CORPUS = path.resolve(import.meta.dirname, '..', 'fixtures', 'hostile');
const SCHEMA = readFileSync(path.join(CORPUS, 'svc.schema.json'), 'utf8');
/** The limit the instance runs with; the `oversize` case writes twice as much. */
const MAX_FILE_BYTES = 64 * 1024;
/** Ceilings, not speed targets: from the write to the refusal, and peak RSS growth during one case. */
const CASE_DEADLINE_MS = 15_000;
const RSS_CEILING_MB = 200;

const CODES: readonly HotconfErrorCode[] = [
  'E_NOT_FOUND', 'E_NOT_FILE', 'E_READ', 'E_TOO_LARGE', 'E_ENCODING', 'E_PARSE', 'E_DUPLICATE_KEY', 'E_ALIAS_LIMIT',
  'E_DEPTH', 'E_FORBIDDEN_KEY', 'E_TAG', 'E_SCHEMA', 'E_DUPLICATE_NAME',
];
const GENERATORS = ['oversize', 'sparse-10g', 'fifo', 'symlink-loop', 'directory', 'dev-zero'] as const;

/** One entry of cases.json. */
interface HostileCase {
  /** File under test/fixtures/hostile/, written as `as`; or `generate`, made by the test at run time. */
  file?: string;
  generate?: (typeof GENERATORS)[number];
  /** Path under the config dir that the case is written to. */
  as: string;
  /** The good config the case replaces (default: svc + the extension of `as`). */
  base?: string;
  /** The code it must be refused with, or 'ok' for a hostile-looking input that is valid (value in `value`). */
  expect: HotconfErrorCode | 'ok';
  what: string;
  line?: number;
  col?: number;
  pointer?: string;
  value?: unknown;
}

const CASES = JSON.parse(readFileSync(path.join(CORPUS, 'cases.json'), 'utf8')) as HostileCase[];
const idOf = (c: HostileCase) => c.file ?? `generated:${c.generate}`;

const goodValue = (k: number) => ({ name: 'svc', port: 8080, workers: k });
const goodText = (file: string, k: number) =>
  file.endsWith('.json') ? JSON.stringify(goodValue(k)) : `name: svc\nport: 8080\nworkers: ${k}\n`;

/** Object.prototype and friends, as they were before any case ran. */
const PROTOS = [Object.prototype, Array.prototype, Function.prototype, String.prototype, Number.prototype];
const protoKeys = () => PROTOS.map((p) => Reflect.ownKeys(p).map(String).sort().join(','));
const cleanProtos = protoKeys();

/** Atomically puts something at `config/<rel>`: made at a hidden temp name by `make`, then renamed over. */
async function replaceWith(w: World, rel: string, make: (tmp: string) => Promise<unknown>): Promise<void> {
  const target = path.join(w.configDir, rel);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.hostile`);
  await make(tmp);
  await rename(tmp, target);
}

async function applyCase(w: World, c: HostileCase): Promise<void> {
  if (c.file !== undefined) {
    await w.configAtomic(c.as, await readFile(path.join(CORPUS, c.file)) as unknown as string);
    return;
  }
  switch (c.generate) {
    case 'oversize':
      // Valid YAML, only too big: the size limit is what refuses it.
      return w.configAtomic(c.as, `name: svc\nport: 8080\n# ${'x'.repeat(MAX_FILE_BYTES * 2)}\n`).then(() => undefined);
    case 'sparse-10g': {
      const big = w.tmp.file('sparse.bin');
      const fh = await open(big, 'w');
      await fh.truncate(10 * 1024 ** 3);
      await fh.close();
      return replaceWith(w, c.as, (tmp) => symlink(big, tmp));
    }
    case 'fifo':
      return replaceWith(w, c.as, (tmp) => run('mkfifo', [tmp]));
    case 'symlink-loop':
      return replaceWith(w, c.as, (tmp) => symlink(path.basename(c.as), tmp));
    case 'dev-zero':
      return replaceWith(w, c.as, (tmp) => symlink('/dev/zero', tmp));
    case 'directory':
      // No rename can put a directory over a file: unlink and mkdir, well inside the debounce window.
      await rm(path.join(w.configDir, c.as));
      await mkdir(path.join(w.configDir, c.as));
      return;
    default:
      throw new Error(`unknown generator ${String(c.generate)}`);
  }
}

/** Samples RSS every few ms; `stop()` returns the peak growth over the baseline, in MB. */
function rssSampler() {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return (peak - base) / 1024 ** 2;
    },
  };
}

const figures: Array<{ id: string; ms: number; rssMB: number }> = [];

describe.concurrent('the hostile corpus (issue 5, section 1)', () => {
  it('holds at least 50 refusals, each well formed and with its fixture file', () => {
    expect(CASES.filter((c) => c.expect !== 'ok').length).toBeGreaterThanOrEqual(50);
    expect(new Set(CASES.map(idOf)).size).toBe(CASES.length);
    for (const c of CASES) {
      expect(c.file === undefined ? GENERATORS : [c.file], idOf(c)).toContain(c.file ?? c.generate);
      if (c.file !== undefined) expect(readFileSync(path.join(CORPUS, c.file)).length, c.file).toBeLessThan(1_000_000);
      expect([...CODES, 'ok'], idOf(c)).toContain(c.expect);
      expect(c.as, idOf(c)).toMatch(/^svc\.(yaml|json)$/);
      if (c.expect === 'ok') expect(c.value, idOf(c)).toBeDefined();
    }
  });

  for (const c of CASES) {
    it(`${idOf(c)}: ${c.what} → ${c.expect}`, { timeout: 60_000 }, async () => {
      await using w = await world();
      await w.tmp.write('schemas/svc.schema.json', SCHEMA);
      const base = c.base ?? `svc${path.extname(c.as)}`;
      await w.config(base, goodText(base, 1));
      // followExternalLinks: generated cases link to /dev/zero and a sparse file outside the config dir, to test the reader
      await using hot = await start(w, { maxFileBytes: MAX_FILE_BYTES, debounceMs: 30, followExternalLinks: true });
      expect(hot.get('svc')).toEqual(goodValue(1));
      const version = hot.version;

      const rss = rssSampler();
      const t0 = performance.now();
      await applyCase(w, c);
      if (c.expect === 'ok') {
        await until(() => hot.version > version, `${idOf(c)} applied`, { timeoutMs: CASE_DEADLINE_MS });
        expect(hot.get('svc')).toEqual(c.value);
        expect(hot.status().errors).toBe(0);
      } else {
        const st = await until(() => hot.status().configs.find((s) => s.name === 'svc' && s.state === 'error'), `${idOf(c)} refused`, {
          timeoutMs: CASE_DEADLINE_MS,
        });
        const e = st.error!;
        expect(e.code).toBe(c.expect);
        if (c.line !== undefined) {
          expect({ line: e.line, col: e.col }).toEqual({ line: c.line, col: c.col });
          expect(e.message.startsWith(`${e.file}:${c.line}:${c.col}: `), e.message).toBe(true);
        } else {
          expect(e.message.startsWith(`${e.file}: `), e.message).toBe(true);
        }
        if (c.pointer !== undefined) expect(e.pointer).toBe(c.pointer);
        expect(path.basename(e.file)).toMatch(/^svc\.(yaml|json)$/);
        // last-known-good: the value and the version did not move
        expect(hot.get('svc')).toEqual(goodValue(1));
        expect(hot.version).toBe(version);
        // reported in the log, with the same message
        const logged = hot.logs.lines.some((l) => Array.isArray(l.errors) && (l.errors as Array<{ message: string }>).some((x) => x.message === e.message));
        expect(logged, 'the refusal is logged').toBe(true);
      }
      const ms = performance.now() - t0;
      const rssMB = rss.stop();
      figures.push({ id: idOf(c), ms, rssMB });
      expect(rssMB).toBeLessThan(RSS_CEILING_MB);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(protoKeys()).toEqual(cleanProtos);

      // Nothing else broke: the pipeline applies the next good write.
      await rm(path.join(w.configDir, c.as), { recursive: true, force: true });
      await w.configAtomic(base, goodText(base, 2));
      await until(() => (hot.get('svc') as { workers?: number } | undefined)?.workers === 2, 'the next good write', { timeoutMs: CASE_DEADLINE_MS });
      expect(hot.status().errors).toBe(0);
    });
  }
});

afterAll(() => {
  if (figures.length === 0) return;
  const slowest = figures.reduce((a, b) => (b.ms > a.ms ? b : a));
  const hungriest = figures.reduce((a, b) => (b.rssMB > a.rssMB ? b : a));
  console.log(
    `[hostile] ${figures.length} cases; max write→verdict ${slowest.ms.toFixed(0)} ms (${slowest.id}); ` +
      `max RSS growth ${hungriest.rssMB.toFixed(1)} MB (${hungriest.id})`,
  );
});
