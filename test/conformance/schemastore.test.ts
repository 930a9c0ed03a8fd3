// Public schemas as downloaded: popular SchemaStore schemas with their own positive and negative examples
// (vendored under test/vendor/schemastore, see its SOURCE), run through hotconf's public API (`checkConfigs`,
// as `hotconf check` does). Each schema must compile whenever plain non-strict ajv compiles it, accept its
// positive examples and refuse its negative ones exactly as plain ajv does (the engine's DIFFERENCES list the
// deliberate exceptions). Pass counts: HOTCONF_CONFORMANCE_REPORT=1, or bench/conformance.mjs.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capped, compare, loadApi, mismatch, report, tally, type Comparison, type Doc, type Draft, type Group, type Tally } from './engine.js';

const ROOT = path.resolve(import.meta.dirname, '../vendor/schemastore');

/** The vendored schemas a schema `$ref`s (by `$id` or a path relative to its own), directly or not. */
function needsOf(name: string, schemas: ReadonlyMap<string, unknown>): string[] {
  const seen = new Set<string>();
  const visit = (n: string) => {
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) for (const x of v) walk(x);
      else if (v !== null && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          const target = k === '$ref' && typeof x === 'string' ? /([^/#]+)\.json(#|$)/.exec(x)?.[1] : undefined;
          if (target !== undefined && target !== name && schemas.has(target) && !seen.has(target)) {
            seen.add(target);
            visit(target);
          }
          walk(x);
        }
      }
    };
    walk(schemas.get(n));
  };
  visit(name);
  return [...seen].sort();
}

function draftOf(schema: unknown): Draft {
  const meta = typeof schema === 'object' && schema !== null && '$schema' in schema ? String(schema.$schema) : '';
  if (/draft-04/.test(meta)) return 'draft4';
  if (/draft-06/.test(meta)) return 'draft6';
  if (/draft-07/.test(meta)) return 'draft7';
  if (/2019-09/.test(meta)) return 'draft2019-09';
  return 'draft2020-12';
}

async function examples(dir: string, expected: boolean): Promise<Doc[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).sort();
  } catch {
    return [];
  }
  return Promise.all(
    files.map(async (f) => ({
      label: `${expected ? 'test' : 'negative_test'}/${path.basename(dir)}/${f}`,
      text: await readFile(path.join(dir, f), 'utf8'),
      ext: path.extname(f) as Doc['ext'],
      expected,
    })),
  );
}

const source = await readFile(path.join(ROOT, 'SOURCE'), 'utf8');
const tested = /^Schemas: (.*)\.$/m.exec(source)![1]!.split(' ');
const referenced = /^Referenced only .*: (.*)\.$/m.exec(source)![1]!.split(' ');
const schemas = new Map<string, Group['schema']>();
for (const name of [...tested, ...referenced]) schemas.set(name, JSON.parse(await readFile(path.join(ROOT, 'schemas', `${name}.json`), 'utf8')) as Group['schema']);
const groups: Group[] = await Promise.all(
  [...tested, ...referenced].map(async (name): Promise<Group> => {
    const schema = schemas.get(name)!;
    const needs = needsOf(name, schemas);
    const docs = tested.includes(name)
      ? [...(await examples(path.join(ROOT, 'test', name), true)), ...(await examples(path.join(ROOT, 'negative_test', name), false))]
      : [];
    return { key: name, label: name, file: name, draft: draftOf(schema), schema, docs, ...(needs.length > 0 ? { needs } : {}) };
  }),
);

const api = await loadApi();
let result: Comparison;

describe('SchemaStore schemas with their own examples', () => {
  beforeAll(async () => {
    result = await compare(api, groups, { live: true });
  }, 300_000);

  afterAll(async () => {
    const rows = (name: string) => result.rows.filter((r) => r.group.key === name);
    const tallies: Array<readonly [string, Tally]> = tested.map((name) => [`${name} (${groups.find((g) => g.key === name)!.draft})`, tally(rows(name))]);
    tallies.push(['all', tally(result.rows)]);
    await report('schemastore', tallies);
  });

  it('has at least ten schemas with examples, positive and negative', () => {
    expect(tested.length).toBeGreaterThanOrEqual(10);
    expect(result.rows.filter((r) => r.doc.expected === true).length).toBeGreaterThan(100);
    expect(result.rows.filter((r) => r.doc.expected === false).length).toBeGreaterThan(50);
  });

  it.each(tested)('%s: plain ajv compiles it and judges its examples as their authors expect', (name) => {
    // Guards the comparison below: if these examples ever stop meaning what they say for ajv, this says so.
    const group = groups.find((g) => g.key === name)!;
    expect(result.plainCompileErrors.filter((e) => e.group === group).map((e) => e.error)).toEqual([]);
    const wrong = result.rows.filter((r) => r.group === group && r.plain.verdict !== (r.doc.expected ? 'valid' : 'invalid'));
    expect(wrong.map((r) => `${r.doc.label}: plain ajv ${r.plain.verdict} ${r.plain.detail}`)).toEqual(KNOWN_PLAIN_MISSES[name] ?? []);
  });

  it.each(tested)('%s: hotconf compiles it and judges every example as plain ajv does', (name) => {
    const rows = result.rows.filter((r) => r.group.key === name);
    expect(rows.length).toBeGreaterThan(0);
    expect(capped(rows.map(mismatch).filter((m) => m !== undefined))).toEqual([]);
  });
});

/** Examples plain ajv itself does not judge as SchemaStore says (SchemaStore's own runner differs), by schema. */
const KNOWN_PLAIN_MISSES: Readonly<Record<string, readonly string[]>> = {};
