// The schema registry's semantics (issue 13): every draft by `$schema`, non-strict unless asked, formats,
// references across files in any order, defaults only on request, and the bugs found while measuring.
import { describe, expect, it } from 'vitest';
import { validateOnce } from '../../src/check.js';
import { parseConfig } from '../../src/load/index.js';
import { REDACTED, redact, SchemaRegistry, type SchemaRegistryOptions } from '../../src/validate/index.js';
import { tempDir } from '../helpers.js';

type Schemas = Record<string, unknown>;

async function registry(schemas: Schemas, options: Partial<SchemaRegistryOptions> = {}) {
  const tmp = await tempDir();
  const files: string[] = [];
  for (const [name, schema] of Object.entries(schemas)) {
    files.push(await tmp.write(`${name}.schema.json`, typeof schema === 'string' ? schema : JSON.stringify(schema, null, 2)));
  }
  const reg = new SchemaRegistry({ schemaDir: tmp.dir, ...options });
  const changed = await reg.reload(files);
  return { reg, tmp, files, changed, [Symbol.asyncDispose]: () => tmp[Symbol.asyncDispose]() };
}

const check = (reg: SchemaRegistry, name: string, text: string) => {
  const parsed = parseConfig(text, 'yaml', 'x.yaml');
  return reg.validate(name, parsed.value, parsed, 'x.yaml');
};
const messages = (r: ReturnType<typeof check>) => (r.ok ? [] : r.errors.map((e) => e.message));

describe('spec semantics by default, strict mode on request', () => {
  // What SchemaStore's prometheus and github-workflow schemas do, and ajv's strict mode refuses.
  const lax = {
    properties: { a: { type: 'string', markdownDescription: 'x' } },
    'x-intellij-html-description': 'y',
    required: ['undeclared'],
    type: ['object', 'null'],
  };

  it('a schema that strict mode would lint compiles and validates as the spec says', async () => {
    await using r = await registry({ lax });
    expect(r.reg.schemaError('lax')).toBeUndefined();
    expect(check(r.reg, 'lax', 'undeclared: 1\na: s\n').ok).toBe(true);
    expect(messages(check(r.reg, 'lax', 'a: s\n'))).toEqual(["x.yaml:1:1: /: must have required property 'undeclared'"]);
  });

  it('non-strict still takes no infinity or NaN for a number (YAML .inf, .nan; JSON 1e400)', async () => {
    await using r = await registry({ s: { properties: { n: { type: 'number' }, i: { type: 'integer' } } } });
    for (const text of ['n: .inf\n', 'n: -.inf\n', 'n: .nan\n', 'i: .inf\n', 'n: 1e400\n']) expect(check(r.reg, 's', text).ok, text).toBe(false);
  });

  it('schemaStrict refuses it, saying where in the schema file', async () => {
    await using r = await registry({ lax }, { schemaStrict: true });
    const err = r.reg.schemaError('lax');
    expect(err?.code).toBe('E_SCHEMA_INVALID');
    expect(err?.message).toMatch(/strict mode/);
    expect(err?.message).toMatch(/^.*lax\.schema\.json(:\d+:\d+)?: /);
  });

  it('strict mode findings that name a schema path get its line and column', async () => {
    await using r = await registry({ s: { type: 'object', properties: { a: { properties: {} } } } }, { schemaStrict: true });
    expect(r.reg.schemaError('s')).toMatchObject({ line: 4, col: 10, pointer: '/properties/a' });
    expect(r.reg.schemaError('s')?.message).toMatch(/missing type "object" for keyword "properties"/);
  });
});

describe('every published draft, chosen by $schema', () => {
  const cases: Array<[string, string | undefined, object, string, string]> = [
    ['draft-04', 'http://json-schema.org/draft-04/schema#', { properties: { n: { maximum: 3, exclusiveMaximum: true } } }, 'n: 2\n', 'n: 3\n'],
    ['draft-04 without #', 'http://json-schema.org/draft-04/schema', { properties: { n: { maximum: 3, exclusiveMaximum: true } } }, 'n: 2\n', 'n: 3\n'],
    ['draft-06', 'http://json-schema.org/draft-06/schema#', { properties: { n: { exclusiveMaximum: 3 } } }, 'n: 2\n', 'n: 3\n'],
    ['draft-07 https', 'https://json-schema.org/draft-07/schema#', { if: { required: ['a'] }, then: { required: ['b'] } }, 'a: 1\nb: 2\n', 'a: 1\n'],
    ['draft-07 http without #', 'http://json-schema.org/draft-07/schema', { if: { required: ['a'] }, then: { required: ['b'] } }, 'a: 1\nb: 2\n', 'a: 1\n'],
    ['2019-09', 'https://json-schema.org/draft/2019-09/schema', { dependentRequired: { a: ['b'] } }, 'a: 1\nb: 2\n', 'a: 1\n'],
    ['2019-09 http with #', 'http://json-schema.org/draft/2019-09/schema#', { dependentRequired: { a: ['b'] } }, 'a: 1\nb: 2\n', 'a: 1\n'],
    ['2020-12', 'https://json-schema.org/draft/2020-12/schema', { prefixItems: [{ type: 'integer' }] }, '[1]\n', '[x]\n'],
    ['no $schema: 2020-12', undefined, { prefixItems: [{ type: 'integer' }] }, '[1]\n', '[x]\n'],
  ];
  for (const [what, uri, body, good, bad] of cases) {
    it(what, async () => {
      await using r = await registry({ s: { ...(uri ? { $schema: uri } : {}), ...body } });
      expect(r.reg.schemaError('s')).toBeUndefined();
      expect(check(r.reg, 's', good).ok).toBe(true);
      expect(check(r.reg, 's', bad).ok).toBe(false);
    });
  }

  it('draft-04 tuples: `items` as an array is positional', async () => {
    await using r = await registry({ s: { $schema: 'http://json-schema.org/draft-04/schema#', items: [{ type: 'integer' }], additionalItems: false } });
    expect(check(r.reg, 's', '[1]\n').ok).toBe(true);
    expect(check(r.reg, 's', '[1, 2]\n').ok).toBe(false);
  });

  it('an unknown $schema is a schema error naming the drafts hotconf knows, at its line', async () => {
    await using r = await registry({ s: { $schema: 'http://example.com/my-meta', type: 'object' } });
    expect(r.reg.schemaError('s')).toMatchObject({ code: 'E_SCHEMA_INVALID', line: 2 });
    expect(r.reg.schemaError('s')?.message).toMatch(/unknown \$schema "http:\/\/example.com\/my-meta": hotconf knows draft-04/);
  });

  it('a schema that breaks its meta-schema is refused with the place in the file', async () => {
    await using r = await registry({ s: { type: 'object', properties: { n: { type: 'integr' } } } });
    expect(r.reg.schemaError('s')).toMatchObject({ code: 'E_SCHEMA_INVALID', pointer: '/properties/n/type', line: 5 });
  });
});

describe('formats', () => {
  it('ajv-formats formats are checked; an unknown format is an annotation', async () => {
    await using r = await registry({ s: { properties: { mail: { format: 'email' }, home: { format: 'iri' }, mine: { format: 'x-custom' } } } });
    expect(r.reg.schemaError('s')).toBeUndefined();
    expect(check(r.reg, 's', 'mail: a@b.example\nhome: anything\nmine: anything\n').ok).toBe(true);
    expect(messages(check(r.reg, 's', 'mail: not-an-email\n'))).toEqual(['x.yaml:1:7: /mail: must match format "email"']);
  });

  it("unknownFormats: 'refuse' refuses a schema naming an unknown format, and says which", async () => {
    await using r = await registry({ s: { properties: { mine: { format: 'x-custom' } } } }, { unknownFormats: 'refuse' });
    expect(r.reg.schemaError('s')?.message).toMatch(/unknown format "x-custom" at "#\/properties\/mine"/);
    expect(r.reg.schemaError('s')?.message).not.toMatch(/ignored/);
  });

  it('library users register formats of their own: a RegExp or a function', async () => {
    const formats = { semver: /^\d+\.\d+\.\d+$/, even: (s: string) => s.length % 2 === 0 };
    await using r = await registry({ s: { properties: { v: { format: 'semver' }, e: { format: 'even' } } } }, { formats, unknownFormats: 'refuse' });
    expect(check(r.reg, 's', 'v: 1.2.3\ne: ab\n').ok).toBe(true);
    expect(messages(check(r.reg, 's', "v: '1.2'\ne: abc\n"))).toEqual(['x.yaml:1:4: /v: must match format "semver"', 'x.yaml:2:4: /e: must match format "even"']);
  });
});

describe('validateOnce takes the schema options too', () => {
  it('formats, unknownFormats and useDefaults', async () => {
    await using tmp = await tempDir();
    const schema = await tmp.write('s.schema.json', JSON.stringify({ properties: { v: { format: 'semver' }, n: { default: 1 } } }));
    const file = await tmp.write('s.yaml', "v: '1.2'\n");
    expect(await validateOnce(file, schema)).toMatchObject({ ok: true, value: { v: '1.2' } });
    const refused = await validateOnce(file, schema, { unknownFormats: 'refuse' });
    expect(!refused.ok && refused.errors[0]!.message).toMatch(/unknown format "semver"/);
    const formats = { semver: /^\d+\.\d+\.\d+$/ };
    expect(await validateOnce(file, schema, { formats })).toMatchObject({ ok: false });
    expect(await validateOnce(file, schema, { value: { v: '1.2.3' }, formats, useDefaults: true })).toMatchObject({ ok: true, value: { v: '1.2.3', n: 1 } });
  });
});

describe('references between schema files', () => {
  const common = { $id: 'https://example.com/common', $defs: { port: { type: 'integer', maximum: 65535 } } };

  it('by $id and by relative path, whatever the listing order', async () => {
    // `a` sorts and is listed before what it refers to; `z` after.
    for (const order of [
      ['a', 'lib/common', 'lib/path'],
      ['lib/path', 'lib/common', 'a'],
    ]) {
      const all: Schemas = {
        a: { properties: { p: { $ref: 'https://example.com/common#/$defs/port' }, q: { $ref: 'lib/path.schema.json' } } },
        'lib/common': common,
        'lib/path': { type: 'string', pattern: '^/' },
      };
      await using r = await registry(Object.fromEntries(order.map((n) => [n, all[n]])));
      expect(r.reg.schemaError('a')).toBeUndefined();
      expect(check(r.reg, 'a', 'p: 80\nq: /x\n').ok).toBe(true);
      expect(messages(check(r.reg, 'a', 'p: 70000\nq: x\n'))).toEqual(['x.yaml:1:4: /p: must be <= 65535', 'x.yaml:2:4: /q: must match pattern "^/"']);
    }
  });

  it('a schema read before the one it refers to compiles once that one arrives, and is reported for re-validation', async () => {
    await using r = await registry({ a: { $ref: 'https://example.com/common#/$defs/port' } });
    expect(r.reg.schemaError('a')?.message).toMatch(/no schema in the schema directory has the \$id "https:\/\/example.com\/common"/);
    const file = await r.tmp.write('common.schema.json', JSON.stringify(common));
    expect(await r.reg.reload([file])).toEqual(['a', 'common']);
    expect(check(r.reg, 'a', '80\n').ok).toBe(true);
  });

  it('a remote $ref is never fetched: the message names the URL and how to provide it', async () => {
    await using r = await registry({ a: { properties: { x: { $ref: 'https://json.schemastore.org/prettierrc.json' } } } });
    expect(r.reg.schemaError('a')?.message).toContain(
      '$ref "https://json.schemastore.org/prettierrc.json" cannot be resolved: no schema in the schema directory has the $id "https://json.schemastore.org/prettierrc.json". hotconf never fetches schemas: save that schema as a file in the schema directory, with "$id": "https://json.schemastore.org/prettierrc.json"',
    );
  });

  it('two schemas that refer to each other, one of them broken, are both explained', async () => {
    await using r = await registry({
      a: { $id: 'https://example.com/a', properties: { b: { $ref: 'https://example.com/b' } } },
      b: { $id: 'https://example.com/b', properties: { a: { $ref: 'https://example.com/a' }, x: { $ref: '#/$defs/none' } } },
    });
    expect(r.reg.schemaError('a')?.message).toMatch(/names .*b\.schema\.json, which is invalid|has nothing at "#\/\$defs\/none"/);
    expect(r.reg.schemaError('b')?.message).toMatch(/has nothing at "#\/\$defs\/none"/);
  });

  it('a relative $ref to a missing file names the file', async () => {
    await using r = await registry({ a: { $ref: 'nothere.schema.json' } });
    expect(r.reg.schemaError('a')?.message).toMatch(/there is no schema file .*nothere\.schema\.json/);
  });

  it('a $ref across drafts is refused with a message that says so', async () => {
    await using r = await registry({
      a: { $ref: 'https://example.com/old' },
      old: { $schema: 'http://json-schema.org/draft-07/schema#', $id: 'https://example.com/old', type: 'integer' },
    });
    expect(r.reg.schemaError('old')).toBeUndefined();
    expect(r.reg.schemaError('a')?.message).toMatch(/a draft-07 schema, from a 2020-12 one: a \$ref cannot cross drafts/);
  });

  it('two different schemas with one $id: the second is refused, naming the first', async () => {
    await using r = await registry({ a: { $id: 'https://example.com/x', type: 'integer' }, b: { $id: 'https://example.com/x', type: 'string' } });
    expect(r.reg.schemaError('a')).toBeUndefined();
    expect(r.reg.schemaError('b')?.message).toMatch(/its \$id "https:\/\/example.com\/x" is not unique: .*a\.schema\.json has it too/);
  });
});

describe('defaults are annotations unless asked for', () => {
  const schema = { type: 'object', properties: { alpha: { type: 'number', maximum: 3, default: 5 }, level: { type: 'string', default: 'info' } } };

  it('validation judges what was written, and leaves the value alone', async () => {
    await using r = await registry({ s: schema });
    const r1 = check(r.reg, 's', '{}\n');
    expect(r1.ok && r1.value).toEqual({});
  });

  it('useDefaults fills a copy after the verdict; a default that would make the document invalid is not applied', async () => {
    await using r = await registry({ s: schema, t: { type: 'object', properties: { level: { type: 'string', default: 'info' } } } }, { useDefaults: true });
    const parsed = parseConfig('{}\n', 'yaml', 'x.yaml');
    const filled = r.reg.validate('t', parsed.value, parsed, 'x.yaml');
    expect(filled.ok && filled.value).toEqual({ level: 'info' });
    expect(parsed.value).toEqual({}); // the written value is not touched
    // alpha's default (5) breaks its own maximum: the document is valid as written, and stays as written
    const kept = check(r.reg, 's', '{}\n');
    expect(kept.ok && kept.value).toEqual({});
    const given = check(r.reg, 's', 'alpha: 1\n');
    expect(given.ok && given.value).toEqual({ alpha: 1, level: 'info' });
  });
});

describe('limits that refused real schemas', () => {
  it('boolean root schemas are legal', async () => {
    await using r = await registry({ yes: 'true', no: 'false' });
    expect(check(r.reg, 'yes', 'a: 1\n').ok).toBe(true);
    expect(messages(check(r.reg, 'no', 'a: 1\n'))).toEqual(['x.yaml:1:1: /: boolean schema is false']);
  });

  it('a schema over 1 MiB compiles under the default limit; maxSchemaBytes is its own option', async () => {
    // generated schemas are large by their descriptions (vector.json: 1.3 MB)
    const big = { type: 'object', properties: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`p${i}`, { type: 'string', description: 'x'.repeat(1100) }])) };
    expect(JSON.stringify(big).length).toBeGreaterThan(1_048_576);
    await using r = await registry({ big });
    expect(r.reg.schemaError('big')).toBeUndefined();
    expect(check(r.reg, 'big', 'p1: x\n').ok).toBe(true);
    const small = new SchemaRegistry({ schemaDir: r.tmp.dir, maxSchemaBytes: 1_048_576 });
    await small.reload(r.files);
    expect(small.schemaError('big')?.message).toMatch(/too large/);
  });
});

describe('bugs found while measuring', () => {
  it('a schema with an $id that failed to compile compiles once fixed, and a schema using it gets the real message', async () => {
    const broken = { $id: 'https://example.com/shared', type: 'object', properties: { n: { $ref: '#/$defs/missing' } } };
    await using r = await registry({ shared: broken, user: { $ref: 'https://example.com/shared' } });
    // asked first about the user: the message is about the schema it uses, whatever the order
    expect(r.reg.schemaError('user')?.message).toMatch(/names .*shared\.schema\.json, which is invalid/);
    expect(r.reg.schemaError('shared')?.message).toMatch(/missing/);
    await r.tmp.write('shared.schema.json', JSON.stringify({ ...broken, properties: { n: { type: 'integer' } } }));
    expect(await r.reg.reload(r.files)).toEqual(['shared', 'user']);
    expect(r.reg.schemaError('shared')).toBeUndefined();
    expect(check(r.reg, 'user', 'n: 1\n').ok).toBe(true);
    // and broken again, then fixed again: no "already exists" ever
    await r.tmp.write('shared.schema.json', JSON.stringify(broken));
    await r.reg.reload(r.files);
    expect(r.reg.schemaError('shared')?.message).not.toMatch(/already exists/);
  });

  it('a validator that throws is its config error (E_SCHEMA_INVALID), not an exception', async () => {
    // legal 2020-12, and ajv recurses without end on it
    const loop = { $id: 'https://example.com/loop', $dynamicAnchor: 'n', allOf: [{ $ref: '#/$defs/d' }], $defs: { d: { $dynamicRef: '#n' } } };
    const formats = {
      boom: () => {
        throw new Error('format exploded');
      },
    };
    await using r = await registry({ loop, fmt: { format: 'boom' } }, { formats });
    const a = check(r.reg, 'loop', 'a: 1\n');
    expect(!a.ok && a.errors[0]).toMatchObject({ code: 'E_SCHEMA_INVALID' });
    expect(messages(a)[0]).toMatch(/could not validate it: the validator threw RangeError: Maximum call stack size exceeded/);
    expect(messages(check(r.reg, 'fmt', 'x\n'))[0]).toMatch(/the validator threw Error: format exploded/);
  });

  it('a catastrophic pattern runs in linear time (re2js)', async () => {
    await using r = await registry({ s: { properties: { a: { pattern: '^(a+)+$' } }, patternProperties: { '^(b+)+$': { type: 'integer' } } } });
    const evil = `${'a'.repeat(32)}!`;
    expect(messages(check(r.reg, 's', `a: ${evil}\n`))).toEqual(['x.yaml:1:4: /a: must match pattern "^(a+)+$"']);
    expect(check(r.reg, 's', `a: aaaa\n${'b'.repeat(40)}c: x\n`).ok).toBe(true);
  });

  it('ECMAScript escapes RE2 spells differently still work; lookaround falls back to ECMAScript, and strict mode refuses it', async () => {
    const str = (pattern: string) => ({ type: 'string', pattern });
    const s = { properties: { u: str('^\\u0041+$'), look: str('^(?!tmp)[a-z]+$'), back: str('^(a)\\1$') } };
    await using r = await registry({ s });
    expect(check(r.reg, 's', 'u: AAA\nlook: data\nback: aa\n').ok).toBe(true);
    expect(messages(check(r.reg, 's', 'u: B\nlook: tmpx\nback: ab\n'))).toHaveLength(3);
    await using strict = await registry({ s: { type: 'object', properties: s.properties } }, { schemaStrict: true });
    expect(strict.reg.schemaError('s')?.message).toMatch(/pattern "\^\(\?!tmp\)\[a-z\]\+\$" cannot run in the linear-time regex engine/);
  });

  it('secrets are found from the structure: under properties named like data keywords, and in every item `contains` matches', async () => {
    const secret = { type: 'string', writeOnly: true };
    await using r = await registry({
      s: {
        type: 'object',
        properties: {
          default: secret,
          enum: secret,
          const: { type: 'string', 'x-hotconf-secret': true },
          examples: secret,
          list: { type: 'array', contains: { type: 'object', properties: { key: secret }, required: ['key'] } },
        },
      },
    });
    const res = check(r.reg, 's', 'default: a\nenum: b\nconst: c\nexamples: d\nlist:\n  - key: k1\n  - key: k2\n');
    expect(res.ok && res.secrets).toEqual(['/const', '/default', '/enum', '/examples', '/list/0/key', '/list/1/key']);
    expect(redact(res.ok ? res.value : undefined, res.ok ? res.secrets : [])).toMatchObject({ list: [{ key: REDACTED }, { key: REDACTED }] });
  });

  it('an integer beyond 2^53 is refused wherever the schema can only take it as an integer, and never let through', async () => {
    const big = '1152921504606846976\n'; // 2^60
    await using r = await registry({
      int: { type: 'integer' },
      notInt: { not: { type: 'integer' } },
      oneOf: { oneOf: [{ type: 'integer' }, { type: 'number' }] },
      anyOf: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
      num: { type: 'number' },
      either: { anyOf: [{ type: 'integer' }, { type: 'number' }] },
    });
    for (const name of ['int', 'anyOf']) expect(messages(check(r.reg, name, big))[0], name).toMatch(/must be an integer from -\(2\^53 - 1\) to 2\^53 - 1/);
    // refused as ajv refuses them: 2^60 is an integer, so `not integer` fails, and it matches both branches of the oneOf
    expect(check(r.reg, 'notInt', big).ok).toBe(false);
    expect(check(r.reg, 'oneOf', big).ok).toBe(false);
    // a number that the schema takes as a number is a number (1e300 is a float as written, too)
    expect(check(r.reg, 'num', big).ok).toBe(true);
    expect(check(r.reg, 'either', big).ok).toBe(true);
    expect(check(r.reg, 'int', '9007199254740991\n').ok).toBe(true);
  });
});
