// Plain regression tests for what the hostile corpus (hostile.test.ts) found wrong in hotconf, one per fix.
import { symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateOnce } from '../../src/index.js';
import { sleep, tempDir } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';

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

describe('symlink loops named like configs while hotconf closes', () => {
  // chokidar's close() removes every listener, 'error' included; an add still in flight (the stat of a new
  // symlink loop fails with ELOOP) then emits 'error' with no listener, which throws inside chokidar as an
  // unhandled rejection: by default the end of the process. Seen once in `npm test` under load.
  it('closing while the watcher is still looking at many symlink loops rejects nothing', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => void rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      for (let round = 0; round < 5; round++) {
        await using w = await world();
        await w.schema('svc', { type: 'object' });
        const hot = await start(w, { debounceMs: 5 });
        // Loops appear while hotconf runs; it is closed as soon as the last one is made.
        for (let i = 0; i < 200; i++) await symlink(`loop${i}.yaml`, path.join(w.configDir, `loop${i}.yaml`));
        await hot.close();
        await sleep(100);
      }
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    expect(rejections.map(String)).toEqual([]);
  });
});
