// The official JSON-Schema-Test-Suite (vendored under test/vendor/json-schema-test-suite, see its SOURCE), run
// through hotconf's public API: every test's schema and data become a schema file and a config file, and
// `checkConfigs` judges them as `hotconf check` would. hotconf's verdict must equal plain non-strict ajv's
// (the engine's DIFFERENCES list the deliberate exceptions); how many verdicts match the suite's is counted
// for the report (HOTCONF_CONFORMANCE_REPORT=1, or bench/conformance.mjs).
//
// Run: drafts 4, 6, 7, 2019-09, 2020-12, required tests, optional/format, and optional/bignum (where the
// safe-integer rule is a deliberate difference, reported on its own row). Left out: groups whose schema
// `$ref`s a remote (http://localhost:1234/…, which the suite expects a test runner to serve).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capped, compare, DRAFTS, loadApi, META, mismatch, report, tally, type Comparison, type Draft, type Group, type Tally } from './engine.js';

const ROOT = path.resolve(import.meta.dirname, '../vendor/json-schema-test-suite/tests');
/** The formats ajv-formats implements: the suite's optional/format files for them are counted per draft. */
const AJV_FORMATS = new Set([
  'date-time', 'date', 'time', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'uri-template',
  'uuid', 'json-pointer', 'relative-json-pointer', 'regex', 'ecmascript-regex', 'unknown',
]);

interface SuiteGroup {
  description: string;
  schema: unknown;
  tests: Array<{ description: string; data: unknown; valid: boolean }>;
}

interface SuiteFile {
  readonly file: string;
  readonly kind: 'required' | 'format' | 'other-format' | 'bignum';
  readonly groups: Group[];
}

async function loadDraft(draft: Draft): Promise<SuiteFile[]> {
  const dir = path.join(ROOT, draft);
  const files = [
    ...(await readdir(dir)).filter((f) => f.endsWith('.json')).sort(),
    ...(await readdir(path.join(dir, 'optional/format'))).filter((f) => f.endsWith('.json')).sort().map((f) => `optional/format/${f}`),
    'optional/bignum.json',
  ];
  const out: SuiteFile[] = [];
  for (const file of files) {
    const format = file.startsWith('optional/format/') ? path.basename(file, '.json') : undefined;
    const raw = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as SuiteGroup[];
    const groups = raw.map((g, i): Group => {
      // Older drafts' files carry no `$schema`: the draft is named here, as a user's schema would name it.
      const schema = g.schema !== null && typeof g.schema === 'object' && !('$schema' in g.schema) ? { $schema: META[draft], ...g.schema } : g.schema;
      return {
        key: `${file.replace(/\.json$/, '').replace(/[^a-z0-9-]/gi, '_')}_${i}`,
        label: `${draft}/${file} › ${g.description}`,
        file,
        draft,
        schema: schema as Group['schema'],
        docs: g.tests.map((t) => ({ label: t.description, text: JSON.stringify(t.data), ext: '.json', expected: t.valid })),
      };
    });
    const kind = file === 'optional/bignum.json' ? 'bignum' : format === undefined ? 'required' : AJV_FORMATS.has(format) ? 'format' : 'other-format';
    out.push({ file, kind, groups });
  }
  return out;
}

const api = await loadApi();
// Read at collection time: it.each needs the file names before beforeAll runs.
const loaded = new Map(await Promise.all(DRAFTS.map(async (d) => [d, await loadDraft(d)] as const)));
const tallies: Array<readonly [string, Tally]> = [];
const skippedAll: string[] = [];

for (const draft of DRAFTS) {
  describe(draft, () => {
    const files = loaded.get(draft)!;
    let result: Comparison;

    beforeAll(async () => {
      result = await compare(
        api,
        files.flatMap((f) => f.groups),
        { skipMissingRef: /^https?:\/\/localhost:1234\// },
      );
      for (const kind of ['required', 'format', 'other-format', 'bignum'] as const) {
        const groups = new Set(files.filter((f) => f.kind === kind).flatMap((f) => f.groups));
        tallies.push([`${draft}${kind === 'required' ? '' : ` ${kind}`}`, tally(result.rows.filter((r) => groups.has(r.group)))]);
      }
      skippedAll.push(...result.skipped.map((s) => `${s.group.label}: ${s.reason}`));
      if (process.env.HOTCONF_CONFORMANCE_REPORT === '1') console.log(`${draft}: plain ajv ${result.ms.plain} ms, hotconf ${result.ms.hotconf} ms`);
    }, 300_000);

    it('runs (almost) every group: only remote-ref groups are left out', () => {
      expect(result.rows.length).toBeGreaterThan(0);
      for (const s of result.skipped) expect(s.reason).toMatch(/^\$ref to remote http:\/\/localhost:1234\//);
      // The suite's remote-ref groups are a small share; a bug that made every schema "miss a ref" must not pass.
      expect(result.skipped.length).toBeLessThan(files.flatMap((f) => f.groups).length / 5);
    });

    it('the deliberate differences are real: each explains some of the suite (bignum, __proto__ and friends)', () => {
      const used = new Set(result.rows.map((r) => r.difference).filter((d) => d !== undefined));
      expect([...used].sort()).toEqual(['forbidden-key', 'safe-integer']);
    });

    // One test per suite file, so that one failing file does not hide another; its failure lists every test.
    it.each(files.map((f) => f.file))('%s: hotconf judges as plain ajv does', (file) => {
      const rows = result.rows.filter((r) => r.group.file === file);
      expect(capped(rows.map(mismatch).filter((m) => m !== undefined))).toEqual([]);
    });
  });
}

afterAll(async () => {
  await report('json-schema-test-suite', tallies, { skipped: skippedAll });
  if (process.env.HOTCONF_CONFORMANCE_REPORT === '1') console.log(`skipped groups:\n  ${skippedAll.join('\n  ')}`);
});
