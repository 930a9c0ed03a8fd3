// Plain regression tests for what the hostile corpus (hostile.test.ts) found wrong in hotconf, one per fix.
import { describe, expect, it } from 'vitest';
import { validateOnce } from '../../src/index.js';
import { tempDir } from '../helpers.js';

async function check(schema: object, file: string, text: string, useDefaults = false) {
  await using tmp = await tempDir();
  const schemaFile = await tmp.write('s/x.schema.json', JSON.stringify(schema));
  return await validateOnce(await tmp.write(file, text), schemaFile, { useDefaults });
}

describe('integers beyond ±(2^53 − 1) where the schema wants an integer', () => {
  const schema = { type: 'object', properties: { n: { type: 'integer' }, m: { type: ['integer', 'null'] }, f: { type: 'number' } } };

  it.each([
    ['x.yaml', 'n: 123456789012345678901234567890\n', '/n', 1],
    ['x.json', '{"n": 9007199254740993}', '/n', 1],
    ['x.yaml', 'm: -9007199254740993\n', '/m', 1],
  ])('%s %j is refused at its position, not applied with lost digits', async (file, text, pointer, line) => {
    const r = await check(schema, file, text);
    expect(r.ok).toBe(false);
    const [e] = r.ok ? [] : r.errors;
    expect(e).toMatchObject({ code: 'E_SCHEMA', pointer, line });
    expect(e?.detail).toMatch(/^must be an integer from -\(2\^53 - 1\) to 2\^53 - 1/);
  });

  it('the largest safe integers, and big numbers where the schema wants a number, are accepted', async () => {
    const r = await check(schema, 'x.yaml', 'n: 9007199254740991\nm: -9007199254740991\nf: 1e300\n');
    expect(r).toMatchObject({ ok: true, value: { n: 9007199254740991, m: -9007199254740991, f: 1e300 } });
  });

  it('a `default` or `enum` that looks like a subschema is data, and is not changed', async () => {
    const s = { type: 'object', properties: { d: { default: { type: 'integer', writeOnly: true } }, e: { enum: [{ type: 'integer' }] } } };
    const r = await check(s, 'x.yaml', 'e: {type: integer}\n', true);
    expect(r.ok && r.value).toEqual({ d: { type: 'integer', writeOnly: true }, e: { type: 'integer' } });
  });
});
