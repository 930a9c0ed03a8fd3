// The YAML test suite (yaml/yaml-test-suite, branch data; vendored under test/vendor/yaml-test-suite, see its
// SOURCE) through the YAML parser. A config is one document of plain data, so some valid YAML is refused on
// purpose, each with its code: a second document (E_PARSE "only one document"), a tag outside the core schema
// (E_TAG), a map or list as a key (E_PARSE), two null keys (E_DUPLICATE_KEY). Everything else must hold:
// invalid YAML is refused, and valid YAML gives the value the suite's in.json gives.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseConfig } from '../../src/load/index.js';

const ROOT = path.resolve(import.meta.dirname, '../vendor/yaml-test-suite/data');
const tests: string[] = [];
for (const id of readdirSync(ROOT).sort()) {
  if (existsSync(path.join(ROOT, id, 'in.yaml'))) tests.push(id);
  else for (const sub of readdirSync(path.join(ROOT, id)).sort()) tests.push(`${id}/${sub}`);
}

/** in.json holds one JSON text per document: the values, in order. */
function jsonStream(text: string): unknown[] {
  const docs: unknown[] = [];
  let rest = text.trim();
  while (rest !== '') {
    let end = 0;
    for (let i = 1; i <= rest.length && end === 0; i++) {
      if (i < rest.length && !/\s/.test(rest[i]!)) continue;
      try {
        docs.push(JSON.parse(rest.slice(0, i)));
        end = i;
      } catch {
        // not a whole JSON text yet
      }
    }
    if (end === 0) throw new Error(`not a stream of JSON texts: ${rest.slice(0, 40)}`);
    rest = rest.slice(end).trim();
  }
  return docs;
}

const CORE_TAG = /^!!(str|int|float|bool|null|map|seq)$/;
/** True when the YAML carries a tag outside the core schema (`!local`, `!!set`, `!<tag:…>`, `!e!x`). */
function hasOtherTag(yaml: string): boolean {
  return (yaml.match(/(?<=^|[\s[{,-])!\S*/gm) ?? []).some((t) => !CORE_TAG.test(t.replace(/[,\]}]+$/, '')));
}

interface Case {
  readonly id: string;
  readonly name: string;
  readonly yaml: Buffer;
  readonly error: boolean;
  readonly json: unknown[] | undefined;
}
const cases: Case[] = tests.map((id) => {
  const dir = path.join(ROOT, id);
  const json = path.join(dir, 'in.json');
  return {
    id,
    name: readFileSync(path.join(dir, '==='), 'utf8').trim(),
    yaml: readFileSync(path.join(dir, 'in.yaml')),
    error: existsSync(path.join(dir, 'error')),
    json: existsSync(json) ? jsonStream(readFileSync(json, 'utf8')) : undefined,
  };
});

function parse(c: Case): { ok: true; value: unknown } | { ok: false; error: ConfigError } {
  try {
    return { ok: true, value: parseConfig(c.yaml, 'yaml', 'in.yaml').value };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, error: err };
    throw err;
  }
}

describe('yaml-test-suite', () => {
  test('is all there', () => {
    expect(cases.length).toBe(402);
    expect(cases.filter((c) => c.error).length).toBe(94);
  });

  test.each(cases.filter((c) => c.error).map((c) => [c.id, c.name, c] as const))('%s %s: invalid YAML is refused', (_id, _name, c) => {
    const r = parse(c);
    expect(r.ok).toBe(false);
  });

  test.each(cases.filter((c) => !c.error && c.json !== undefined).map((c) => [c.id, c.name, c] as const))(
    '%s %s: the value in.json gives, or a deliberate refusal',
    (_id, _name, c) => {
      const r = parse(c);
      const docs = c.json!;
      if (docs.length > 1) {
        expect(r.ok ? 'accepted' : r.error.detail).toBe('only one document is allowed');
      } else if (!r.ok) {
        expect(r.error.code, r.error.message).toBe('E_TAG');
        expect(hasOtherTag(c.yaml.toString('utf8')), 'only a tag outside the core schema is refused').toBe(true);
      } else {
        expect(isDeepStrictEqual(r.value, docs.length === 0 ? null : docs[0]), JSON.stringify(r.value)).toBe(true);
      }
    },
  );

  test.each(cases.filter((c) => !c.error && c.json === undefined).map((c) => [c.id, c.name, c] as const))(
    '%s %s (no JSON form: complex or duplicate keys): accepted, or refused for what it is',
    (_id, _name, c) => {
      const r = parse(c);
      if (!r.ok) expect(['map keys must be scalars', 'duplicate key', 'only one document is allowed']).toContain(r.error.detail);
    },
  );

  test('the deliberate refusals of valid YAML, counted: tags, then a second document', () => {
    const valid = cases.filter((c) => !c.error && c.json !== undefined);
    const refused = valid.filter((c) => !parse(c).ok);
    expect(refused.filter((c) => c.json!.length > 1).length).toBe(18);
    expect(refused.filter((c) => c.json!.length <= 1).length).toBe(13);
    expect(valid.length - refused.length).toBe(248);
  });
});
