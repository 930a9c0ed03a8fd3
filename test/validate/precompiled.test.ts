// Validators generated at build time (scripts/build-validators.mjs → dist/generated, used by precompiled.ts) say
// exactly what ajv compiling the same schema at run time says: same verdicts, same error objects. Needs the
// package built with `npm run build` (as `npm test`'s pretest does), not tsc alone.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SETTINGS_SCHEMA } from '../../src/daemon/settings.js';
import { createAjv, type AnyAjv, type Dialect } from '../../src/validate/dialects.js';
import { parseConfig } from '../../src/load/index.js';
import { SchemaRegistry, variantInstance } from '../../src/validate/index.js';
import { DEFAULT_META, metaValidator, precompiledSchema } from '../../src/validate/precompiled.js';
import { tempDir } from '../helpers.js';

const VENDOR = fileURLToPath(new URL('../vendor/schemastore/schemas/', import.meta.url));
const META_URIS: Array<[Dialect, string]> = [...(Object.entries(DEFAULT_META) as Array<[Dialect, string]>), ['draft-07', 'http://json-schema.org/draft-06/schema']];
const linear = { onUnsupportedPattern: (p: string) => new RegExp(p, 'u') };

/** The run-time meta instance of a dialect, as index.ts makes it without generated code. */
const runtimeMeta = new Map<Dialect, AnyAjv>();
function metaAjv(dialect: Dialect): AnyAjv {
  let ajv = runtimeMeta.get(dialect);
  if (!ajv) runtimeMeta.set(dialect, (ajv = createAjv(dialect, { strict: false, useDefaults: false, formats: {}, onWarning: () => undefined, ...linear })));
  return ajv;
}

function bothMeta(dialect: Dialect, uri: string, schema: object) {
  const pre = metaValidator(uri)!;
  const preValid = pre(schema);
  const ajv = metaAjv(dialect);
  const runValid = ajv.validateSchema({ ...schema, $schema: uri });
  return { pre: { valid: preValid, errors: pre.errors ?? null }, runtime: { valid: runValid, errors: ajv.errors ?? null } };
}

describe('generated meta-schema validators', () => {
  it('exist for every draft (the build made them)', () => {
    for (const [, uri] of META_URIS) expect(metaValidator(uri), `${uri}: run npm run build`).toBeTypeOf('function');
    expect(metaValidator('http://json-schema.org/draft-07/schema#')).toBe(metaValidator('http://json-schema.org/draft-07/schema'));
  });

  it("judge SchemaStore's schemas and hand-broken ones as ajv's run-time meta instance does, error for error", async () => {
    const vendored = await Promise.all((await readdir(VENDOR)).filter((f) => f.endsWith('.json')).map(async (f) => JSON.parse(await readFile(path.join(VENDOR, f), 'utf8')) as object));
    const broken: object[] = [
      { type: 'strin' },
      { properties: { a: { minLength: -1, maxLength: 'x' } }, required: 'a' },
      { $id: 'x#frag', $anchor: '1bad', pattern: 5, items: [{ type: 1 }] },
      { definitions: { a: { enum: [] } }, $defs: { b: { type: ['string', 'string'] } }, allOf: [] },
      { additionalProperties: 'no', dependencies: { a: 3 }, format: 7, multipleOf: 0 },
    ];
    let invalid = 0;
    for (const [dialect, uri] of META_URIS) {
      for (const schema of [...vendored, ...broken]) {
        const { $schema: _, ...rest } = schema as { $schema?: string };
        const { pre, runtime } = bothMeta(dialect, uri, rest);
        expect(pre, `${uri} ${JSON.stringify(rest).slice(0, 80)}`).toEqual(runtime);
        if (!pre.valid) invalid++;
      }
    }
    expect(invalid).toBeGreaterThan(5 * broken.length - 1); // the comparison saw refusals, not only passes
  });
});

describe("the generated validator of hotconf's settings schema", () => {
  it('is found for the schema file as it is, and not for another text', async () => {
    const text = await readFile(SETTINGS_SCHEMA, 'utf8');
    expect(precompiledSchema(text, '2020-12', linear.onUnsupportedPattern), 'run npm run build').toBeDefined();
    expect(precompiledSchema(`${text} `, '2020-12', linear.onUnsupportedPattern)).toBeUndefined();
    expect(precompiledSchema(text, 'draft-07', linear.onUnsupportedPattern)).toBeUndefined();
  });

  it('refuses and accepts settings as the schema compiled at run time does, error for error', async () => {
    const text = await readFile(SETTINGS_SCHEMA, 'utf8');
    const pre = precompiledSchema(text, '2020-12', linear.onUnsupportedPattern)!.validate;
    const ajv = variantInstance('plain', '2020-12', { strict: false, formats: {}, onWarning: () => undefined, ...linear });
    ajv.addSchema(JSON.parse(text) as object, 'file:///hotconf.schema.json', undefined, false);
    const runtime = ajv.getSchema('file:///hotconf.schema.json')!;
    const same = (value: unknown) => {
      const a = pre(value);
      const b = runtime(value);
      expect({ valid: a, errors: pre.errors ?? null }, JSON.stringify(value)).toEqual({ valid: b, errors: runtime.errors ?? null });
      return a;
    };
    const handmade: unknown[] = [
      {},
      { configDir: 'config', schemaDir: 'schemas', debounceMs: 25, log: { level: 'info' } },
      { configDir: '', debounceMs: -1, log: { level: 'loud' }, extra: 1 },
      { etcd: { endpoints: ['ftp://x'], prefix: 'p' } },
      { etcd: { endpoints: ['http://etcd:2379'], prefix: 'p', bogus: true } },
      { http: { listen: 3 }, publish: { dir: 'out', mode: '999' }, notify: { signal: { name: 'HUP' } } },
      { notify: { signal: { name: 'SIGHUP', pidFile: '/run/app.pid' } }, http: { cors: { origins: ['nope'] } } },
      [],
      'hotconf',
      null,
    ];
    const verdicts = handmade.map(same);
    expect(verdicts).toContain(true);
    expect(verdicts).toContain(false);
    // Random settings-shaped documents: the keys of the schema's properties with arbitrary values.
    const keys = Object.keys((JSON.parse(text) as { properties: object }).properties);
    fc.assert(fc.property(fc.dictionary(fc.constantFrom(...keys), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }), (v) => void same(v)), { numRuns: 300 });
  });
});

describe('a registry holding hotconf.schema.json', () => {
  it('says the same, at the same lines and columns, whether it uses the generated validator or compiles a copy', async () => {
    const text = await readFile(SETTINGS_SCHEMA, 'utf8');
    await using tmp = await tempDir();
    const exact = await tmp.write('exact/settings.schema.json', text); // the generated validator's text
    const copy = await tmp.write('copy/settings.schema.json', `${text}\n`); // another text: compiled here
    const regs = [new SchemaRegistry({ schemaDir: path.dirname(exact) }), new SchemaRegistry({ schemaDir: path.dirname(copy) })];
    await regs[0]!.reload([exact]);
    await regs[1]!.reload([copy]);
    const docs = [
      'configDir: config\ndebounceMs: 25\n',
      'configDir: ""\ndebounceMs: -1\nlog:\n  level: loud\nextra: 1\n',
      'etcd:\n  endpoints: [ftp://x]\n  prefix: p\n  bogus: true\n',
      'publish:\n  dir: out\n  mode: "999"\nnotify:\n  signal:\n    name: HUP\n',
      'notify:\n  webhook:\n    url: http://app.local/reload\n    headers:\n      Authorization: Bearer x\n',
    ];
    const verdicts = docs.map((doc) => {
      const parsed = parseConfig(doc, 'yaml', 'hotconf.yaml');
      const [a, b] = regs.map((r) => r.validate('settings', parsed.value, parsed, 'hotconf.yaml'));
      expect(a).toEqual(b);
      return a!.ok && a!.secrets.join(',');
    });
    expect(verdicts).toEqual(['', false, false, false, '/notify/webhook/headers']);
    expect(regs.map((r) => r.validate('settings', 7, parseConfig('7', 'yaml', 'x'), 'x').ok)).toEqual([false, false]);
  });
});
