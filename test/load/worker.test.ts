// Large files are parsed in a worker thread: the same value and the same errors (class, code, line, col, message)
// as parseConfig in process, for YAML and JSON and for hostile input; and close() ends the worker.
// The worker runs the compiled module (dist/load/worker.js): `npm test` builds it first.
import { readdir } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { HotconfError, ParseError, ReadError } from '../../src/errors.js';
import { parseConfig, type ConfigFormat, type ParseOptions } from '../../src/load/index.js';
import { ConfigParser, DEFAULT_WORKER_THRESHOLD_BYTES } from '../../src/load/worker.js';
import { until } from '../helpers.js';

/** What a parse gives: its value, or its error's class, code, location and message. */
async function outcome(run: () => unknown) {
  try {
    const parsed = (await run()) as { value: unknown };
    return { value: parsed.value };
  } catch (err) {
    const e = err as ParseError;
    return { class: e.constructor.name, code: e.code, line: e.line, col: e.col, message: e.message };
  }
}

const big = (n: number) => ({
  items: Array.from({ length: n }, (_, j) => ({ id: j, name: `item-${j}`, on: j % 2 === 0, w: j / 7, tags: ['a', 'b'], owner: { team: `t${j % 13}` } })),
});
const bigYaml = (n: number) =>
  'items:\n' + big(n).items.map((i) => `  - id: ${i.id}\n    name: ${i.name}\n    on: ${i.on}\n    w: ${i.w}\n    tags: [a, b]\n    owner: {team: ${i.owner.team}}\n`).join('');

const billionLaughs = (levels: number) => {
  let text = `l0: &l0 [${Array(9).fill('"lol"').join(', ')}]\n`;
  for (let i = 1; i < levels; i++) text += `l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
  return text;
};

const cases: Array<[string, string | Buffer, ConfigFormat, ParseOptions?]> = [
  ['a large YAML document', bigYaml(3000), 'yaml'],
  ['a large JSON document', JSON.stringify(big(3000), null, 2), 'json'],
  ['a large JSON document with a duplicate key at its end', JSON.stringify(big(3000), null, 2).replace(/\}\s*$/, ',\n  "items": 1\n}'), 'json'],
  ['a large YAML document with a duplicate key at its end', `${bigYaml(3000)}items: 1\n`, 'yaml'],
  ['a YAML alias bomb', billionLaughs(10), 'yaml'],
  ['YAML nested 10,000 deep', '['.repeat(10_000) + ']'.repeat(10_000), 'yaml'],
  ['JSON nested 10,000 deep', '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), 'json'],
  ['YAML one level deeper than maxDepth', 'a: {b: {c: {d: 1}}}\n', 'yaml', { maxDepth: 3 }],
  ['__proto__ in YAML', 'a:\n  "__proto__":\n    polluted: 1\n', 'yaml'],
  ['__proto__ in JSON', '{"a": 1, "__proto__": {"polluted": 1}}', 'json'],
  ['constructor in JSON', '{\n  "a": {\n    "constructor": {"polluted": 1}\n  }\n}', 'json'],
  ['a !!binary tag', 'a: !!binary aGVsbG8=\n', 'yaml'],
  ['a YAML syntax error', 'a: [1, 2\nb: 3\n', 'yaml'],
  ['invalid JSON', '{\n  "user": "admin",\n  "password": hunter2\n}\n', 'json'],
  ['invalid UTF-8', Buffer.concat([Buffer.from('a: 1\nname: caf'), Buffer.from([0xe9]), Buffer.from('\n')]), 'yaml'],
  ['a NUL byte', 'a: 1\nb: "x\u0000y"\n', 'yaml'],
  ['two documents', 'a: 1\n---\nb: 2\n', 'yaml'],
  ['an invalid option', 'a: 1\n', 'yaml', { maxDepth: 0 }],
];

describe('ConfigParser', () => {
  test.each(cases)('%s: the worker gives the same value or the same error as parsing in process', async (_what, text, format, options) => {
    await using parser = new ConfigParser();
    const bytes = () => (typeof text === 'string' ? Buffer.from(text) : Buffer.from(text));
    const inProcess = await outcome(() => parseConfig(bytes(), format, 'config/x', options));
    const offThread = await outcome(() => parser.parseOffThread(bytes(), format, 'config/x', options));
    expect(offThread).toEqual(inProcess);
  });

  test('errors from the worker are real error instances of this thread, with their codes', async () => {
    await using parser = new ConfigParser();
    await expect(parser.parseOffThread(Buffer.from('a: 1\na: 2\n'), 'yaml', 'x')).rejects.toBeInstanceOf(ParseError);
    await expect(parser.parseOffThread(Buffer.from([0x61, 0x3a, 0x20, 0xff]), 'yaml', 'x')).rejects.toBeInstanceOf(ReadError);
    await expect(parser.parseOffThread(Buffer.from('a: 1'), 'yaml', 'x', { maxAliasCount: -1 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('only files over workerThresholdBytes go to the worker, and they keep their key order and value', async () => {
    await using parser = new ConfigParser();
    expect(parser.workerThresholdBytes).toBe(DEFAULT_WORKER_THRESHOLD_BYTES);
    const text = JSON.stringify({ z: 1, 10: 'ten', a: big(4000), m: [null, -0, 1e300] });
    expect(text.length).toBeGreaterThan(DEFAULT_WORKER_THRESHOLD_BYTES);
    const parsed = await parser.parse(Buffer.from(text), 'json', 'x');
    expect(parsed).toHaveProperty('locateAll');
    expect(parsed.value).toEqual(JSON.parse(text));
    expect(Object.keys(parsed.value as object)).toEqual(Object.keys(JSON.parse(text) as object));
    expect(await parser.parse(Buffer.from('{"small": true}'), 'json', 'x')).not.toHaveProperty('locateAll');
  });

  test('positions of a document parsed in the worker are those found in process', async () => {
    await using parser = new ConfigParser({ workerThresholdBytes: 0 });
    for (const [text, format] of [[bigYaml(300), 'yaml'], [JSON.stringify(big(300), null, 2), 'json']] as const) {
      const requests = [{ pointer: '/items/250/owner/team' }, { pointer: '/items/7/name', key: true }, { pointer: '/items/999' }, { pointer: '' }];
      const here = parseConfig(Buffer.from(text), format, 'x');
      const there = await parser.parseOffThread(Buffer.from(text), format, 'x');
      const expected = requests.map((r) => here.locate(r.pointer, { key: r.key === true }));
      expect(await there.locateAll(requests)).toEqual(expected);
      expect(there.locate('/items/250/owner/team')).toEqual(expected[0]);
    }
  });

  test('close() ends the worker thread; parsing afterwards is E_CLOSED', async () => {
    const threads = async () => (await readdir('/proc/self/task')).length;
    const before = await threads();
    const parser = new ConfigParser({ workerThresholdBytes: 0 });
    expect((await parser.parse(Buffer.from('a: 1\n'), 'yaml', 'x')).value).toEqual({ a: 1 });
    expect(await threads()).toBeGreaterThan(before);
    await parser.close();
    await until(async () => (await threads()) <= before, 'the worker thread to end');
    const err = await parser.parse(Buffer.from('a: 1\n'), 'yaml', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HotconfError);
    expect(err).toMatchObject({ code: 'E_CLOSED' });
  });
});

describe('JSON without the YAML tree', () => {
  const json = (text: string) => outcome(() => parseConfig(Buffer.from(text), 'json', 'x.json'));
  test.each([
    ['a key repeated through an escape', '{"a": 1, "\\u0061": 2}', 'E_DUPLICATE_KEY', 1, 10],
    ['a repeated key after strings holding quotes and colons', '{"s": "x\\":\\"y", "t": "\\\\", "s": 1}', 'E_DUPLICATE_KEY', 1, 29],
    ['a repeated key in a nested object', '[{"a": {"b": 1, "b": 2}}]', 'E_DUPLICATE_KEY', 1, 17],
    ['__proto__ written with an escape', '{"\\u005f_proto__": {"polluted": 1}}', 'E_FORBIDDEN_KEY', 1, 2],
  ])('%s is found, where it is', async (_what, text, code, line, col) => {
    expect(await json(text)).toMatchObject({ code, line, col });
  });

  test('strings that look like keys are not keys', async () => {
    const text = '{"a": "\\"b\\": 1", "list": ["c:", "d" , "e\\\\" , ":"], "f": {"g": "\\\\"}}';
    expect(await json(text)).toEqual({ value: JSON.parse(text) as unknown });
  });

  test('validation positions are found on demand', () => {
    const parsed = parseConfig(Buffer.from('{\n  "a": {"b": [10, 20]},\n  "c/d": true\n}'), 'json', 'x');
    expect(parsed.locate('/a/b/1')).toEqual({ line: 2, col: 19 });
    expect(parsed.locate('/c~1d', { key: true })).toEqual({ line: 3, col: 3 });
  });
});
