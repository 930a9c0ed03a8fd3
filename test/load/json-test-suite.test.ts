// nst/JSONTestSuite (vendored under test/vendor/json-test-suite, see its SOURCE) through the .json parser:
// every y_ file is accepted and gives JSON.parse's value, every n_ file is refused with a ConfigError (never a
// crash), and every i_ file ("implementation defined") gets one or the other. The one deliberate difference:
// duplicate keys, which JSON allows and hotconf refuses (E_DUPLICATE_KEY: which one would win is a guess).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseConfig } from '../../src/load/index.js';

const DIR = path.resolve(import.meta.dirname, '../vendor/json-test-suite/test_parsing');
const files = readdirSync(DIR).sort();
const of = (prefix: string) => files.filter((f) => f.startsWith(prefix));

/** y_ files hotconf refuses on purpose, and the code it refuses them with. */
const REFUSED_ON_PURPOSE: Readonly<Record<string, string>> = {
  'y_object_duplicated_key.json': 'E_DUPLICATE_KEY',
  'y_object_duplicated_key_and_value.json': 'E_DUPLICATE_KEY',
};

function verdict(file: string): { ok: true; value: unknown } | { ok: false; error: ConfigError } {
  try {
    return { ok: true, value: parseConfig(readFileSync(path.join(DIR, file)), 'json', file).value };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, error: err };
    throw err;
  }
}

describe('JSONTestSuite', () => {
  test('is all there', () => {
    expect(of('y_').length).toBe(95);
    expect(of('n_').length).toBe(188);
    expect(of('i_').length).toBe(35);
  });

  test.each(of('y_'))('%s is accepted, with the value JSON.parse gives', (file) => {
    const v = verdict(file);
    if (REFUSED_ON_PURPOSE[file]) {
      expect(v.ok ? 'accepted' : v.error.code).toBe(REFUSED_ON_PURPOSE[file]);
      return;
    }
    expect(v.ok ? 'accepted' : v.error.message).toBe('accepted');
    const text = readFileSync(path.join(DIR, file), 'utf8').replace(/^\uFEFF/, '');
    if (v.ok) expect(v.value).toEqual(JSON.parse(text));
  });

  test.each(of('n_'))('%s is refused with a ConfigError', (file) => {
    const v = verdict(file);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.error.file).toBe(file);
  });

  test.each(of('i_'))('%s is accepted or refused, never a crash', (file) => {
    const v = verdict(file);
    expect(v.ok || v.error instanceof ConfigError).toBe(true);
  });

  test('the implementation-defined cases hotconf refuses: encodings other than UTF-8, and nesting past maxDepth', () => {
    const refused = of('i_').filter((f) => !verdict(f).ok);
    for (const f of refused) expect(/UTF|utf|latin|surrogate_U\+D800|overlong|truncated|continuation|unicode_range|500_nested/.test(f), f).toBe(true);
    const utf16 = refused.filter((f) => /utf16|UTF-16/i.test(f)).map((f) => (verdict(f) as { error: ConfigError }).error.detail);
    expect(utf16).toHaveLength(3);
    for (const detail of utf16) expect(detail).toMatch(/^the file looks like UTF-16 \(/);
  });
});
