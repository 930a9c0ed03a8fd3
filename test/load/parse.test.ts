// Parsing: what a config file may contain, what is refused and where the error points (DESIGN.md point 9),
// and how a JSON pointer maps back to line:col.
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ParseError, ReadError, type ConfigError } from '../../src/errors.js';
import { firstInvalidUtf8, parseConfig, type ConfigFormat, type ParseOptions } from '../../src/load/index.js';

const yaml = (text: string, options?: ParseOptions) => parseConfig(Buffer.from(text), 'yaml', 'config/app.yaml', options);
const json = (text: string) => parseConfig(Buffer.from(text), 'json', 'config/app.json');

/** The ConfigError that `fn` throws (fails the test if it returns). */
function failure(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    return err as ConfigError;
  }
  throw new Error('expected an error');
}

const billionLaughs = (levels: number) => {
  let text = `l0: &l0 [${Array(9).fill('"lol"').join(', ')}]\n`;
  for (let i = 1; i < levels; i++) text += `l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
  return text;
};

describe('YAML', () => {
  test('is read with the YAML 1.2 core schema: yes/no are strings, 010 is ten, ~ is null', () => {
    const { value } = yaml('a: yes\nb: 010\nc: 0o10\nd: ~\ne: 1.5\nf: "x"\ng: [1, two]\nh: {i: true}\n');
    expect(value).toEqual({ a: 'yes', b: 10, c: 8, d: null, e: 1.5, f: 'x', g: [1, 'two'], h: { i: true } });
  });

  test('an empty file, whitespace only or comments only is null', () => {
    expect(yaml('').value).toBeNull();
    expect(yaml('  \n\n').value).toBeNull();
    expect(yaml('# nothing here\n# yet\n').value).toBeNull();
  });

  test('.nan and .inf are numbers, and big integers stay (imprecise) numbers, not BigInt', () => {
    const value = yaml('a: .nan\nb: -.inf\nc: 123456789012345678901234567890\n').value as Record<string, number>;
    expect(value.a).toBeNaN();
    expect(value.b).toBe(-Infinity);
    expect(typeof value.c).toBe('number');
  });

  test('a syntax error is E_PARSE at the line and column of the problem', () => {
    const err = failure(() => yaml('name: app\nport: 80: 443\n'));
    expect(err).toBeInstanceOf(ParseError);
    expect(err).toMatchObject({ code: 'E_PARSE', file: 'config/app.yaml', line: 2, col: 7 });
    expect(err.message).toBe('config/app.yaml:2:7: Nested mappings are not allowed in compact mappings');
  });

  test('a tab used as indentation is E_PARSE at its position', () => {
    expect(failure(() => yaml('server:\n\tport: 1\n'))).toMatchObject({ code: 'E_PARSE', line: 2, col: 1 });
  });

  test.each([
    ['a broken line', 'user: admin\npassword: hunter2: x\n'],
    ['an invalid escape', 'password: "hunt\\qer2"\n'],
    ['an unterminated string', 'password: "hunter2\n'],
    ['a flow collection cut short', 'password: [hunter2\nx: 1\n'],
    ['a duplicate key', 'password: hunter2\npassword: hunter2\n'],
    ['a custom tag', 'password: !vault hunter2\n'],
  ])('an error message never quotes the config: %s', (_what, text) => {
    const err = failure(() => yaml(text));
    expect(err).toBeInstanceOf(ParseError);
    expect(err.message).not.toMatch(/hunt|er2/);
    expect(JSON.stringify(err.toJSON())).not.toMatch(/hunt|er2/);
    expect(err.message).not.toContain('\n');
  });

  test('a second document is E_PARSE: only one document is allowed', () => {
    const err = failure(() => yaml('a: 1\n---\nb: 2\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 2 });
    expect(err.message).toContain('only one document is allowed');
    expect(yaml('---\na: 1\n').value).toEqual({ a: 1 });
  });

  test('duplicate keys are found in linear time: 4× the keys costs far less than 16× the time', () => {
    const map = (n: number) => Array.from({ length: n }, (_, i) => `k${i}: ${i}\n`).join('');
    // A growth ratio, not a speed: it holds on a loaded machine, and yaml's own uniqueKeys check (quadratic:
    // 12.6 s for 40,000 keys here) gives ~16.
    expect(growth(() => yaml(map(10_000)), () => yaml(map(40_000)))).toBeLessThan(10);
    const text = map(40_000);
    expect(Object.keys(yaml(text).value as object)).toHaveLength(40_000);
    expect(failure(() => yaml(`${text}k5: again\n`))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 40_001, col: 1 });
  });

  test('a duplicate key is E_DUPLICATE_KEY at the second occurrence', () => {
    expect(failure(() => yaml('a: 1\nb: 2\na: 3\n'))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 3, col: 1 });
    expect(failure(() => yaml('x:\n  y: 1\n  y: 2\n'))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 3, col: 3 });
  });

  test('keys that become the same property name (1 and "1") are E_DUPLICATE_KEY', () => {
    expect(failure(() => yaml('1: a\n"1": b\n'))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 2 });
  });

  test('a map or list used as a key is E_PARSE', () => {
    expect(failure(() => yaml('? [a, b]\n: 1\n'))).toMatchObject({ code: 'E_PARSE', line: 1, col: 3 });
  });

  test('an alias to a scalar is a legal key: the scalar\'s value (YAML 1.2, 7.1)', () => {
    expect(yaml('x: &a k\n*a : v\n').value).toEqual({ x: 'k', k: 'v' });
    expect(yaml('keys:\n  - &port 8080\nby_port:\n  *port : web\n').value).toEqual({ keys: [8080], by_port: { '8080': 'web' } });
    // Its position is where the alias is written.
    expect(yaml('x: &a k\n*a : [1, 2]\n').locate('/k/1')).toEqual({ line: 2, col: 10 });
    expect(yaml('x: &a k\n*a : v\n').locate('/k', { key: true })).toEqual({ line: 2, col: 1 });
  });

  test('an alias key is checked as the key it stands for: duplicate, forbidden, to a map or list, unknown', () => {
    expect(failure(() => yaml('&a k: 1\n*a : 2\n'))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 2, col: 1 });
    expect(failure(() => yaml('x: &a __proto__\ny:\n  *a : 1\n'))).toMatchObject({ code: 'E_FORBIDDEN_KEY', line: 3, col: 3 });
    const err = failure(() => yaml('x: &a [1]\n*a : v\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 2, col: 1 });
    expect(err.detail).toBe('map keys must be scalars (this alias refers to a map or list)');
    expect(failure(() => yaml('*nope : v\n'))).toMatchObject({ code: 'E_PARSE', line: 1, col: 1 });
  });

  test('alias keys count as alias dereferences', () => {
    expect(failure(() => yaml('x: &a k\ny:\n  *a : 1\nz:\n  *a : 2\n', { maxAliasCount: 1 }))).toMatchObject({ code: 'E_ALIAS_LIMIT', line: 5 });
    expect(yaml('x: &a k\ny:\n  *a : 1\n', { maxAliasCount: 1 }).value).toEqual({ x: 'k', y: { k: 1 } });
  });
});

describe('tags', () => {
  test.each([
    ['a: !!js/function "function () {}"\n', '!!js/function'],
    ['a: !custom 1\n', 'a custom tag'],
    ['a: !!python/object:os.system x\n', '!!python/object'],
    ['a: !!binary aGVsbG8=\n', '!!binary'],
    ['a: !!set {x}\n', '!!set'],
    ['a: !!timestamp 2001-12-14\n', '!!timestamp'],
    ['a: !!omap [x: 1]\n', '!!omap'],
    ['a: !<tag:example.com,2000:x> x\n', 'a custom tag'],
    ['--- !custom\na: 1\n', 'a custom tag'],
  ])('%j is E_TAG', (text, tag) => {
    const err = failure(() => yaml(text));
    expect(err.code).toBe('E_TAG');
    expect(err.line).toBe(1);
    const hint = tag === 'a custom tag' ? "; a string that starts with '!' must be quoted" : '';
    expect(err.detail).toBe(`${tag} is not allowed (only the YAML 1.2 core tags are${hint})`);
  });

  // YAML 1.2 core schema, 10.3.2: an explicit tag decides the type; the value must be one of the type's forms.
  test.each([
    ['!!float 1', 1],
    ['!!float -2', -2],
    ['!!float 1e3', 1000],
    ['!!float .5', 0.5],
    ['!!float "3"', 3],
    ['!!float -.inf', -Infinity],
    ['!!int 3', 3],
    ['!!int -7', -7],
    ['!!int 0o17', 15],
    ['!!int 0x1F', 31],
    ['!!int "4"', 4],
    ['!!str 5', '5'],
    ['!!str true', 'true'],
    ['!!str', ''],
    ['!!bool false', false],
    ['!!bool TRUE', true],
    ['!!null', null],
    ['!!null ~', null],
    ['!!null NULL', null],
  ])('a: %s is a core-tagged value', (tagged, expected) => {
    expect(yaml(`a: ${tagged}\n`).value).toEqual({ a: expected });
  });

  test('!!float .nan is NaN', () => {
    expect((yaml('a: !!float .nan\n').value as { a: number }).a).toBeNaN();
  });

  test.each([
    ['!!bool yes', '!!bool', 'true or false (yes, no, on and off are strings in YAML 1.2)'],
    ['!!bool 1', '!!bool', 'true or false (yes, no, on and off are strings in YAML 1.2)'],
    ['!!int 1.5', '!!int', 'an integer: decimal, 0o octal or 0x hexadecimal'],
    ['!!int 0777x', '!!int', 'an integer: decimal, 0o octal or 0x hexadecimal'],
    ['!!float abc', '!!float', 'a number, .inf, -.inf or .nan'],
    ['!!float 0x1F', '!!float', 'a number, .inf, -.inf or .nan'],
    ['!!null nothing', '!!null', 'empty, ~ or null'],
  ])('a: %s is E_TAG about the value, not "a custom tag", and does not echo it', (tagged, tag, allowed) => {
    const err = failure(() => yaml(`a: ${tagged}\n`));
    expect(err).toMatchObject({ code: 'E_TAG', line: 1, col: 4 });
    expect(err.detail).toBe(`a ${tag} value must be ${allowed}`);
    const value = tagged.slice(tag.length + 1);
    if (!allowed.includes(value)) expect(err.message).not.toContain(value);
  });

  test('the core tags are accepted and give plain values', () => {
    const text = 'a: !!str 1\nb: !!int "2"\nc: !!float "1.5"\nd: !!bool "true"\ne: !!null ""\nf: !!map {x: 1}\ng: !!seq [1]\n';
    expect(yaml(text).value).toEqual({ a: '1', b: 2, c: 1.5, d: true, e: null, f: { x: 1 }, g: [1] });
  });
});

describe('directives and documents (README "Config files")', () => {
  test('a %YAML 1.1 directive is accepted, but the file is still read by YAML 1.2 core rules', () => {
    // What a YAML 1.1 author means and does not get: yes/on are strings (not true), 0777 is 777 (not 511),
    // 1:30 is a string (not 90). The README tells: write true, 0o777, "1:30" explicitly.
    const text = '%YAML 1.1\n---\na: yes\nb: on\nc: 0777\nd: 1:30\ne: true\n';
    expect(yaml(text).value).toEqual({ a: 'yes', b: 'on', c: 777, d: '1:30', e: true });
    expect(yaml('%YAML 1.2\n---\na: yes\n').value).toEqual({ a: 'yes' });
  });

  test('a %YAML directive given twice is E_PARSE at the second (yaml-test-suite SF5V)', () => {
    const err = failure(() => yaml('%YAML 1.2\n# again:\n%YAML 1.2\n---\na: 1\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 3, col: 1 });
    expect(err.detail).toBe('the %YAML directive is given twice');
    expect(yaml('%YAML 1.2\n%TAG !e! tag:example.com,2000:\n---\na: "%YAML 1.2"\n').value).toEqual({ a: '%YAML 1.2' });
  });

  test('a second document is E_PARSE where it starts', () => {
    const err = failure(() => yaml('a: 1\n---\nb: 2\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 2, col: 1 });
    expect(err.detail).toBe('only one document is allowed');
    expect(yaml('---\na: 1\n...\n').value).toEqual({ a: 1 });
  });
});

describe('aliases and merge keys', () => {
  test('aliases and merge keys within the limits give plain values', () => {
    const { value } = yaml('base: &base {host: db, port: 5432}\nprimary:\n  <<: *base\n  port: 5433\nlist: [*base]\n');
    expect(value).toEqual({
      base: { host: 'db', port: 5432 },
      primary: { host: 'db', port: 5433 },
      list: [{ host: 'db', port: 5432 }],
    });
  });

  test('a billion-laughs alias bomb (9 levels) is E_ALIAS_LIMIT at the alias that goes over, quickly', () => {
    const started = Date.now();
    const err = failure(() => yaml(billionLaughs(9)));
    expect(err).toMatchObject({ code: 'E_ALIAS_LIMIT', line: 4, col: 10 }); // 9 + 90 + 91 > 100
    expect(err.message).toContain('limit 100');
    expect(Date.now() - started).toBeLessThan(30_000); // a ceiling for a hang: expanded, it would be 10^9 nodes
  });

  test('maxAliasCount bounds the alias dereferences of the whole document', () => {
    const text = 'a: &a 1\nb: &b [*a, *a]\nc: *a\n';
    expect(yaml(text, { maxAliasCount: 3 }).value).toEqual({ a: 1, b: [1, 1], c: 1 });
    expect(failure(() => yaml(text, { maxAliasCount: 2 }))).toMatchObject({ code: 'E_ALIAS_LIMIT', line: 3, col: 4 });
    expect(failure(() => yaml(`${text}d: *b\n`, { maxAliasCount: 5 }))).toMatchObject({ code: 'E_ALIAS_LIMIT', line: 4 });
    expect(failure(() => yaml(text, { maxAliasCount: 0 })).code).toBe('E_ALIAS_LIMIT');
  });

  test('many aliases are refused before they cost quadratic time in yaml: 4× the aliases, far less than 16× the time', () => {
    const doc = (n: number) => Array.from({ length: n }, (_, i) => `a${i}: &x${i} ${i}\nb${i}: *x${i}\n`).join('');
    const refuse = (text: string) => expect(failure(() => yaml(text)).code).toBe('E_ALIAS_LIMIT');
    const small = doc(5_000);
    const large = doc(20_000);
    expect(growth(() => refuse(small), () => refuse(large))).toBeLessThan(10);
  });

  test('what an alias brings in counts: a chain of n merges is 1 + 2 + … + n dereferences', () => {
    const chain = (links: number) => {
      let text = 'm0: &m0 {k0: 0}\n';
      for (let i = 1; i <= links; i++) text += `m${i}: &m${i} {<<: *m${i - 1}, k${i}: ${i}}\n`;
      return text;
    };
    expect(yaml(chain(13)).value).toHaveProperty('m13.k0', 0); // 91 dereferences
    expect(failure(() => yaml(chain(14))).code).toBe('E_ALIAS_LIMIT'); // 105
  });

  test('an alias inside the node it refers to (a cycle) is E_PARSE', () => {
    expect(failure(() => yaml('a: &a [1, *a]\n'))).toMatchObject({ code: 'E_PARSE', line: 1, col: 11 });
    expect(failure(() => yaml('a: &a\n  b: *a\n'))).toMatchObject({ code: 'E_PARSE', line: 2, col: 6 });
  });

  test('an alias with no anchor before it is E_PARSE', () => {
    expect(failure(() => yaml('a: *later\nb: &later 1\n'))).toMatchObject({ code: 'E_PARSE', line: 1, col: 4 });
  });

  test('a merge (<<) of something that is not a map is E_PARSE', () => {
    expect(failure(() => yaml('a:\n  <<: 3\n'))).toMatchObject({ code: 'E_PARSE', line: 2, col: 7 });
  });
});

describe('depth', () => {
  const deep = 10_000;
  test.each<[string, string, ConfigFormat]>([
    ['YAML flow style', '['.repeat(deep) + ']'.repeat(deep), 'yaml'],
    ['YAML flow maps', '{a: '.repeat(deep) + '1' + '}'.repeat(deep), 'yaml'],
    ['YAML block style', '- '.repeat(deep) + 'x\n', 'yaml'],
    ['JSON', '{"a":'.repeat(deep) + '1' + '}'.repeat(deep), 'json'],
    ['JSON arrays', '['.repeat(deep) + ']'.repeat(deep), 'json'],
  ])('nesting 10,000 deep in %s is E_DEPTH, without a crash', (_what, text, format) => {
    const err = failure(() => parseConfig(Buffer.from(text), format, 'deep'));
    expect(err).toBeInstanceOf(ParseError);
    expect(err.code).toBe('E_DEPTH');
    expect(err.message).toContain('limit 64');
  });

  test('maxDepth levels are accepted; one more is E_DEPTH at the first level too deep', () => {
    expect(yaml('a: {b: {c: 1}}\n', { maxDepth: 3 }).value).toEqual({ a: { b: { c: 1 } } });
    expect(failure(() => yaml('a: {b: {c: {d: 1}}}\n', { maxDepth: 3 }))).toMatchObject({ code: 'E_DEPTH', line: 1, col: 12 });
    expect(failure(() => yaml('a:\n  b:\n    - x\n', { maxDepth: 2 }))).toMatchObject({ code: 'E_DEPTH', line: 3, col: 5 });
  });

  test('the depth an alias brings in counts where the alias is used', () => {
    const text = 'shallow: &s [[1]]\nused: [[*s]]\n';
    expect(yaml(text, { maxDepth: 5 }).value).toEqual({ shallow: [[1]], used: [[[[1]]]] });
    expect(failure(() => yaml(text, { maxDepth: 4 }))).toMatchObject({ code: 'E_DEPTH', line: 2, col: 9 });
  });

  test('merged maps count at the level their keys land on, so a chain of merges does not pile up depth', () => {
    let text = 'm0: &m0 {k0: 0}\n';
    for (let i = 1; i < 5; i++) text += `m${i}: &m${i} {<<: *m${i - 1}, k${i}: ${i}}\n`;
    text += 'list:\n  <<: [*m3, *m4]\n';
    const parsed = yaml(text, { maxDepth: 2 });
    expect((parsed.value as Record<string, Record<string, number>>).list).toHaveProperty('k0', 0);
    expect(parsed.locate('/m4/k0')).toEqual({ line: 1, col: 14 });
    expect(parsed.locate('/list/k4')).toEqual({ line: 5, col: 23 });
    expect(failure(() => yaml('a: &a {b: {c: 1}}\nx:\n  <<: *a\n', { maxDepth: 2 }))).toMatchObject({ code: 'E_DEPTH' });
  });
});

describe('forbidden keys', () => {
  test.each([
    ['__proto__', 'yaml', '__proto__: {polluted: 1}\n', 1, 1],
    ['__proto__', 'yaml', 'a:\n  "__proto__":\n    polluted: 1\n', 2, 3],
    ['constructor', 'yaml', 'a: {constructor: {prototype: {polluted: 1}}}\n', 1, 5],
    ['prototype', 'yaml', 'list:\n  - prototype: 1\n', 2, 5],
    ['__proto__', 'yaml', 'base: &b {__proto__: {polluted: 1}}\nx:\n  <<: *b\n', 1, 11],
    ['__proto__', 'json', '{"a": 1, "__proto__": {"polluted": 1}}', 1, 10],
    ['constructor', 'json', '{\n  "a": {\n    "constructor": {"polluted": 1}\n  }\n}', 3, 5],
    ['prototype', 'json', '[{"prototype": 1}]', 1, 3],
  ] as const)('%s in %s is E_FORBIDDEN_KEY at the key, and nothing is polluted', (key, format, text, line, col) => {
    const err = failure(() => parseConfig(Buffer.from(text), format, 'x'));
    expect(err).toMatchObject({ code: 'E_FORBIDDEN_KEY', line, col });
    expect(err.detail).toBe(`key "${key}" is not allowed`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
});

describe('encoding', () => {
  test('invalid UTF-8 is E_ENCODING (a ReadError) at the line and column of the first bad byte', () => {
    const bytes = Buffer.concat([Buffer.from('a: 1\nname: caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
    const err = failure(() => parseConfig(bytes, 'yaml', 'config/app.yaml'));
    expect(err).toBeInstanceOf(ReadError);
    expect(err).toMatchObject({ code: 'E_ENCODING', line: 2, col: 10 });
  });

  test('columns after multi-byte characters count characters, not bytes', () => {
    const bytes = Buffer.concat([Buffer.from('name: été '), Buffer.from([0xc0, 0x80])]);
    expect(failure(() => parseConfig(bytes, 'yaml', 'x'))).toMatchObject({ code: 'E_ENCODING', line: 1, col: 11 });
  });

  test.each([
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['a sequence cut short at the end', [0xe2, 0x82]],
    ['a lone continuation byte', [0x80]],
  ])('%s is E_ENCODING', (_what, tail) => {
    const bytes = Buffer.concat([Buffer.from('a: '), Buffer.from(tail)]);
    expect(failure(() => parseConfig(bytes, 'yaml', 'x'))).toMatchObject({ code: 'E_ENCODING', line: 1, col: 4 });
  });

  test('a NUL byte is E_ENCODING: control character U+0000 is not allowed', () => {
    const err = failure(() => yaml('a: 1\nb: "x\u0000y"\n'));
    expect(err).toBeInstanceOf(ReadError);
    expect(err).toMatchObject({ code: 'E_ENCODING', line: 2, col: 6 });
    expect(err.detail).toBe('control character U+0000 is not allowed');
  });

  test('other C0 control characters are refused, tab, CR and LF are not', () => {
    expect(failure(() => yaml('a: "\u001b[31m"\n')).detail).toBe('control character U+001B is not allowed');
    expect(yaml('a: "x\ty"\r\nb: 2\r\n').value).toEqual({ a: 'x\ty', b: 2 });
  });

  test('binary garbage is refused as E_ENCODING', () => {
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 197 + 13) % 256));
    expect(failure(() => parseConfig(garbage, 'yaml', 'x')).code).toBe('E_ENCODING');
    expect(failure(() => parseConfig(garbage, 'json', 'x')).code).toBe('E_ENCODING');
  });

  const utf16be = (text: string) => Buffer.from(text, 'utf16le').swap16();
  test.each([
    ['UTF-16LE without a byte order mark', Buffer.from('server:\n  port: 8080\n', 'utf16le'), 'little-endian, no byte order mark'],
    ['UTF-16BE without a byte order mark', utf16be('{"port": 8080, "name": "café"}'), 'big-endian, no byte order mark'],
    ['UTF-16LE with its byte order mark', Buffer.from('\uFEFFa: 1\n', 'utf16le'), 'little-endian, with a byte order mark'],
    ['UTF-16BE with its byte order mark', utf16be('\uFEFFa: 1\n'), 'big-endian, with a byte order mark'],
  ])('%s is E_ENCODING naming UTF-16', (_what, bytes, how) => {
    for (const format of ['yaml', 'json'] as const) {
      const err = failure(() => parseConfig(bytes, format, 'x'));
      expect(err).toBeInstanceOf(ReadError);
      expect(err).toMatchObject({ code: 'E_ENCODING', line: 1, col: 1 });
      expect(err.detail).toBe(`the file looks like UTF-16 (${how}): it must be UTF-8 text`);
    }
  });

  test('a UTF-8 byte order mark is accepted and does not shift columns', () => {
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('a: 1\nb: [\n')]);
    expect(parseConfig(Buffer.from([0xef, 0xbb, 0xbf, ...Buffer.from('a: 1\n')]), 'yaml', 'x').value).toEqual({ a: 1 });
    expect(parseConfig('\uFEFF{"a": 1}', 'json', 'x').value).toEqual({ a: 1 });
    expect(failure(() => parseConfig(withBom, 'yaml', 'x'))).toMatchObject({ code: 'E_PARSE' });
    expect(parseConfig(Buffer.concat([withBom.subarray(0, 3), Buffer.from('x: y')]), 'yaml', 'x').locate('/x')).toEqual({ line: 1, col: 4 });
  });

  test('firstInvalidUtf8 agrees with buffer.isUtf8 on any bytes', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ unit: 'binary' }).map((s) => new Uint8Array(Buffer.from(s))),
      fc.tuple(fc.string({ unit: 'binary' }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, at, byte]) => {
        const b = new Uint8Array(Buffer.from(s));
        if (b.length > 0) b[at % b.length] = byte;
        return b;
      }),
    );
    fc.assert(fc.property(bytes, (b) => (firstInvalidUtf8(b) === -1) === isUtf8(b)), { numRuns: 500 });
  });
});

describe('JSON', () => {
  test('a .json file gives the same value JSON.parse gives, for any JSON', () => {
    const safeKeys = fc.string().filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string(),
        fc.array(tie('node')),
        fc.dictionary(safeKeys, tie('node')),
      ),
    })).node;
    fc.assert(
      fc.property(value, fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? '\t' : undefined);
        expect(parseConfig(Buffer.from(text), 'json', 'x').value).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  test('a flat array of 200,000 items parses (no spread of its items into one call)', () => {
    const text = `[${Array(200_000).fill(0).join(',')}]`;
    expect((json(text).value as number[]).length).toBe(200_000);
  });

  test('trailing garbage is E_PARSE at its position', () => {
    const err = failure(() => json('{"a": 1}\n{"b": 2}\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 2, col: 1 });
    expect(err.detail).toBe('invalid JSON: Unexpected non-whitespace character after JSON');
  });

  test('an unexpected token is E_PARSE at its line and column, without quoting the file', () => {
    const err = failure(() => json('{\n  "user": "admin",\n  "password": hunter2\n}\n'));
    expect(err).toMatchObject({ code: 'E_PARSE', line: 3, col: 15 });
    expect(err.message).not.toContain('hunter2');
    expect(err.message).not.toContain('admin');
  });

  test.each([
    ['a comment', '// note\n{}', 1, 1],
    ['a trailing comma', '{"a": 1,}', 1, 9],
    ['single quotes', "{'a': 1}", 1, 2],
    ['an unquoted key', '{a: 1}', 1, 2],
    ['NaN', '{"a": NaN}', 1, 7],
    ['YAML', 'a: 1\n', 1, 1],
    ['an unterminated object', '{"a": 1', 1, 8],
  ])('%s is not strict JSON: E_PARSE', (_what, text, line, col) => {
    expect(failure(() => json(text))).toMatchObject({ code: 'E_PARSE', line, col });
  });

  test('duplicate keys are E_DUPLICATE_KEY at the second one', () => {
    expect(failure(() => json('{\n  "a": 1,\n  "a": 2\n}'))).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 3, col: 3 });
  });

  // Issue 13: an empty .json file used to go live as null. JSON has no empty document; YAML does (null).
  test.each([[''], [' \n\t\n'], ['\uFEFF']])('an empty or blank .json file (%j) is E_PARSE: empty, not JSON', (text) => {
    const err = failure(() => json(text));
    expect(err).toBeInstanceOf(ParseError);
    expect(err).toMatchObject({ code: 'E_PARSE', file: 'config/app.json', line: 1, col: 1 });
    expect(err.detail).toBe('the file is empty (not JSON: write {} or null)');
  });

  test('null is a JSON document (the way to say "nothing" on purpose)', () => {
    expect(json('null').value).toBeNull();
    expect(json(' null \n').value).toBeNull();
  });
});

describe('locate', () => {
  const text = [
    '# app config', // 1
    'server:', // 2
    '  port: 8080', // 3
    '  hosts:', // 4
    '    - alpha', // 5
    '    - name: beta', // 6
    '      weight: 2', // 7
    '  "a/b~c": 1', // 8
    'defaults: &d {retries: 3}', // 9
    'client:', // 10
    '  <<: *d', // 11
    '  same: *d', // 12
  ].join('\n');
  const parsed = yaml(text);

  test('finds nested values, array items and members of array items', () => {
    expect(parsed.locate('/server/port')).toEqual({ line: 3, col: 9 });
    expect(parsed.locate('/server/hosts')).toEqual({ line: 5, col: 5 });
    expect(parsed.locate('/server/hosts/0')).toEqual({ line: 5, col: 7 });
    expect(parsed.locate('/server/hosts/1/weight')).toEqual({ line: 7, col: 15 });
  });

  test('with { key: true } gives the position of the key', () => {
    expect(parsed.locate('/server/port', { key: true })).toEqual({ line: 3, col: 3 });
    expect(parsed.locate('/server/hosts/1/weight', { key: true })).toEqual({ line: 7, col: 7 });
    expect(parsed.locate('/server/hosts/0', { key: true })).toEqual({ line: 5, col: 7 });
  });

  test('unescapes ~1 and ~0 in segments', () => {
    expect(parsed.locate('/server/a~1b~0c')).toEqual({ line: 8, col: 12 });
    expect(parsed.locate('/server/a~1b~0c', { key: true })).toEqual({ line: 8, col: 3 });
  });

  test('falls back to the nearest ancestor that exists', () => {
    expect(parsed.locate('/server/missing')).toEqual(parsed.locate('/server'));
    expect(parsed.locate('/server/port/deeper')).toEqual({ line: 3, col: 9 });
    expect(parsed.locate('/server/hosts/7', { key: true })).toEqual({ line: 5, col: 5 });
    expect(parsed.locate('/nope')).toEqual(parsed.locate(''));
  });

  test('follows aliases and merge keys to where the value is written', () => {
    expect(parsed.locate('/client/retries')).toEqual({ line: 9, col: 24 });
    expect(parsed.locate('/client/same/retries')).toEqual({ line: 9, col: 24 });
  });

  test('the root is where the content starts, 1:1 for an empty file; a malformed pointer matches nothing', () => {
    expect(parsed.locate('')).toEqual({ line: 2, col: 1 });
    expect(yaml('').locate('')).toEqual({ line: 1, col: 1 });
    expect(yaml('# only a comment\n').locate('/a')).toEqual({ line: 1, col: 1 });
    expect(parsed.locate('server')).toBeUndefined();
  });

  test('works for JSON', () => {
    const doc = json('{\n  "a": {"b": [10, 20]},\n  "c/d": true\n}');
    expect(doc.locate('/a/b/1')).toEqual({ line: 2, col: 19 });
    expect(doc.locate('/a/b', { key: true })).toEqual({ line: 2, col: 9 });
    expect(doc.locate('/c~1d')).toEqual({ line: 3, col: 10 });
  });
});

describe('options', () => {
  test('invalid limits are refused with E_OPTIONS', () => {
    expect(failure(() => yaml('a: 1', { maxDepth: 0 })).code).toBe('E_OPTIONS');
    expect(failure(() => yaml('a: 1', { maxAliasCount: -1 })).code).toBe('E_OPTIONS');
  });
});

/** How much longer `large` takes than `small`: the best of three runs each, so that a busy machine's pauses do
 *  not count. A complexity check, not a speed check. */
function growth(small: () => unknown, large: () => unknown): number {
  const best = (f: () => unknown) => {
    let min = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      f();
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  };
  return best(large) / Math.max(best(small), 1);
}
