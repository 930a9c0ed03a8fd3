import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/load/index.js';
import { schemaNameOf } from '../../src/names.js';
import { REDACTED, redact, SchemaRegistry } from '../../src/validate/index.js';
import { tempDir } from '../helpers.js';

async function registry(schemas: Record<string, object | string>) {
  const tmp = await tempDir();
  const files: string[] = [];
  for (const [name, schema] of Object.entries(schemas)) {
    files.push(await tmp.write(`${name}.schema.json`, typeof schema === 'string' ? schema : JSON.stringify(schema)));
  }
  const reg = new SchemaRegistry({ schemaDir: tmp.dir });
  const changed = await reg.reload(files);
  return { reg, tmp, files, changed };
}

const check = (reg: SchemaRegistry, name: string, yaml: string) => {
  const parsed = parseConfig(yaml, 'yaml', 'x.yaml');
  return reg.validate(name, parsed.value, parsed, 'x.yaml');
};

describe('SchemaRegistry', () => {
  it('names schemas by their path under the schema dir', () => {
    expect(schemaNameOf('app.schema.json')).toBe('app');
    expect(schemaNameOf('db/primary.schema.json')).toBe('db/primary');
    expect(schemaNameOf('app.json')).toBeUndefined();
  });

  it('maps every error to line, column and pointer, with allowed values for enums', async () => {
    const { reg, tmp } = await registry({
      s: {
        type: 'object',
        additionalProperties: false,
        properties: { level: { enum: ['info', 'warn'] }, list: { type: 'array', items: { type: 'integer' } } },
      },
    });
    await using _ = tmp;
    const r = check(reg, 's', 'level: loud\nlist:\n  - 1\n  - two\nextra: 1\n');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.message)).toEqual([
      'x.yaml:1:8: /level: must be one of "info", "warn"',
      'x.yaml:4:5: /list/1: must be integer',
      'x.yaml:5:1: /extra: is not allowed here (additionalProperties of /)',
    ]);
  });

  it('finds secrets marked writeOnly or x-hotconf-secret, through $ref and arrays', async () => {
    const { reg, tmp } = await registry({
      s: {
        $defs: { cred: { type: 'object', properties: { key: { type: 'string', writeOnly: true } } } },
        type: 'object',
        properties: {
          users: { type: 'array', items: { $ref: '#/$defs/cred' } },
          token: { type: 'string', 'x-hotconf-secret': true },
          plain: { type: 'string' },
        },
      },
    });
    await using _ = tmp;
    const r = check(reg, 's', 'users:\n  - key: k1\n  - key: k2\ntoken: t\nplain: p\n');
    expect(r.ok && r.secrets).toEqual(['/token', '/users/0/key', '/users/1/key']);
    const shown = redact(r.ok ? r.value : undefined, r.ok ? r.secrets : []);
    expect(shown).toEqual({ users: [{ key: REDACTED }, { key: REDACTED }], token: REDACTED, plain: 'p' });
  });

  it('supports draft-07 schemas as well as 2020-12', async () => {
    const { reg, tmp } = await registry({
      old: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { n: { type: 'integer' } } },
    });
    await using _ = tmp;
    expect(check(reg, 'old', 'n: 1\n').ok).toBe(true);
    expect(check(reg, 'old', 'n: x\n').ok).toBe(false);
  });

  it('recompiles a changed schema that keeps its $id, and reports only the names that changed', async () => {
    const { reg, tmp, files, changed } = await registry({
      a: { $id: 'https://example.com/a', type: 'object', properties: { n: { type: 'integer' } } },
      b: { type: 'object' },
    });
    await using _ = tmp;
    expect(changed).toEqual(['a', 'b']);
    expect(await reg.reload(files)).toEqual([]); // same text: nothing to re-validate
    await tmp.write('a.schema.json', JSON.stringify({ $id: 'https://example.com/a', type: 'object', properties: { n: { type: 'string' } } }));
    expect(await reg.reload(files)).toEqual(['a']);
    expect(check(reg, 'a', 'n: text\n').ok).toBe(true);
  });

  it('names whose schema files hold the same text share one compiled schema, and each follows its own file', async () => {
    const same = { type: 'object', properties: { n: { type: 'integer', maximum: 9 } } };
    const { reg, tmp, files } = await registry({ a: same, b: same, c: same });
    await using _ = tmp;
    // one compile, so even an `$id` (which ajv allows once per instance) is no obstacle to copies of a schema
    const withId = await registry({ x: { $id: 'https://example.com/x', ...same }, y: { $id: 'https://example.com/x', ...same } });
    await using __ = withId.tmp;
    for (const name of ['x', 'y']) expect(check(withId.reg, name, 'n: 1\n').ok).toBe(true);
    for (const name of ['a', 'b', 'c']) {
      expect(check(reg, name, 'n: 1\n').ok).toBe(true);
      const r = check(reg, name, 'n: 10\n');
      expect(!r.ok && r.errors[0]).toMatchObject({ code: 'E_SCHEMA', pointer: '/n', line: 1, col: 4 });
    }
    await tmp.write('a.schema.json', JSON.stringify({ ...same, properties: { n: { type: 'string' } } }));
    expect(await reg.reload([files[0]!])).toEqual(['a']);
    expect(check(reg, 'a', 'n: text\n').ok).toBe(true);
    expect(check(reg, 'b', 'n: text\n').ok).toBe(false);
    expect(check(reg, 'b', 'n: 1\n').ok).toBe(true);
    // the text goes back to the shared one, still compiled for b and c
    await tmp.write('a.schema.json', JSON.stringify(same));
    expect(await reg.reload([files[0]!])).toEqual(['a']);
    expect(check(reg, 'a', 'n: 10\n').ok).toBe(false);
    expect(check(reg, 'c', 'n: 3\n').ok).toBe(true);
  });

  it('an invalid schema is reported as E_SCHEMA_INVALID for its configs', async () => {
    const { reg, tmp } = await registry({ bad: { type: 'object', properties: { n: { type: 'integr' } } }, broken: '{ nope' });
    await using _ = tmp;
    for (const name of ['bad', 'broken']) {
      const r = check(reg, name, 'n: 1\n');
      expect(!r.ok && r.errors[0]!.code).toBe('E_SCHEMA_INVALID');
    }
  });

  it('a missing schema is E_NO_SCHEMA unless schemas are optional', async () => {
    const { reg, tmp } = await registry({});
    await using _ = tmp;
    const r = check(reg, 'nothing', 'a: 1\n');
    expect(!r.ok && r.errors[0]!.code).toBe('E_NO_SCHEMA');
    const parsed = parseConfig('a: 1\n', 'yaml', 'x.yaml');
    expect(reg.validate('nothing', parsed.value, parsed, 'x.yaml', false).ok).toBe(true);
  });
});

describe('SchemaRegistry and hostile schema files', () => {
  it('a FIFO or an oversized file in the schema dir is reported, never read blocking', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    await using tmp = await tempDir();
    await promisify(execFile)('mkfifo', [tmp.file('fifo.schema.json')]);
    await tmp.write('big.schema.json', `{"description": "${'x'.repeat(2048)}"}`);
    const reg = new SchemaRegistry({ schemaDir: tmp.dir, maxSchemaBytes: 1024 });
    expect(await reg.reload([tmp.file('fifo.schema.json'), tmp.file('big.schema.json')])).toEqual(['big', 'fifo']);
    expect(reg.schemaError('fifo')?.message).toMatch(/not a regular file/);
    expect(reg.schemaError('big')?.message).toMatch(/too large/);
  });
});
