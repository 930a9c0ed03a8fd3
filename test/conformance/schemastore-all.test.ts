// Not a CI test (skipped unless HOTCONF_SCHEMASTORE_MIRROR names a git directory of SchemaStore/schemastore, as
// bench/conformance.mjs --all-schemastore does): how many of all SchemaStore schemas compile in hotconf and in
// plain non-strict ajv, each schema on its own (no other schema beside it), judged on the document `{}`.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compare, loadApi, report, type Draft, type Group } from './engine.js';

const mirror = process.env.HOTCONF_SCHEMASTORE_MIRROR;

function draftOf(meta: unknown): Draft | undefined {
  const m = typeof meta === 'string' ? meta : '';
  if (m === '') return 'draft2020-12';
  if (/draft-04/.test(m)) return 'draft4';
  if (/draft-06/.test(m)) return 'draft6';
  if (/draft-07/.test(m)) return 'draft7';
  if (/2019-09/.test(m)) return 'draft2019-09';
  if (/2020-12/.test(m)) return 'draft2020-12';
  return undefined;
}

describe.skipIf(!mirror)('all SchemaStore schemas (script, not CI)', () => {
  it('counts the schemas that compile, hotconf and plain non-strict ajv', async () => {
    const git = (...args: string[]) => execFileSync('git', ['--git-dir', mirror!, ...args], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const files = git('ls-tree', '--name-only', 'HEAD', 'src/schemas/json/').split('\n').filter((f) => f.endsWith('.json'));
    const groups: Group[] = [];
    const unreadable: string[] = [];
    const otherDraft: string[] = [];
    for (const file of files) {
      let schema: unknown;
      try {
        schema = JSON.parse(git('show', `HEAD:${file}`));
      } catch {
        unreadable.push(file); // absent from the mirror (its largest blobs), or not JSON
        continue;
      }
      const meta = schema !== null && typeof schema === 'object' ? (schema as Record<string, unknown>).$schema : undefined;
      const draft = draftOf(meta);
      if (!draft) otherDraft.push(`${file} (${String(meta)})`);
      const key = file.replace(/^.*\//, '').replace(/\.json$/, '').replace(/[^a-z0-9-]/gi, '_');
      groups.push({ key, label: key, file, draft: draft ?? 'draft2020-12', schema: schema as Group['schema'], docs: [{ label: '{}', text: '{}', ext: '.json', expected: undefined }] });
    }
    const api = await loadApi();
    const { rows } = await compare(api, groups, { isolate: true });
    const compiled = (who: 'hotconf' | 'plain') => rows.filter((r) => r[who].verdict !== 'schema-error' && r[who].verdict !== 'crashed').length;
    const onlyPlain = rows.filter((r) => r.plain.verdict !== 'schema-error' && (r.hotconf.verdict === 'schema-error' || r.hotconf.verdict === 'crashed'));
    const summary = {
      schemas: files.length,
      read: groups.length,
      unreadable: unreadable.length,
      otherDraft,
      hotconfCompiles: compiled('hotconf'),
      plainCompiles: compiled('plain'),
      onlyPlainCompiles: onlyPlain.map((r) => `${r.group.file}: ${r.hotconf.detail.slice(0, 200)}`),
    };
    await report('schemastore-all', [], summary);
    if (process.env.HOTCONF_CONFORMANCE_REPORT === '1') console.log(JSON.stringify(summary, null, 2));
    expect(groups.length).toBeGreaterThan(0);
  }, 3_600_000);
});
