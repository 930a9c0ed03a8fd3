// The worker locates errors in JSON by scanning its text (src/load/json-locate.ts): it must give the positions
// the YAML position tree gives, wherever the pointer leads.
import { describe, expect, test } from 'vitest';
import { locateInJson } from '../../src/load/json-locate.js';
import { parseConfig } from '../../src/load/index.js';

const texts = [
  '{"a":1,"b":[1,2,{"c":"x"}],"d":{"e":null}}',
  '{\n  "a": 1,\n  "b": [\n    1,\n    2,\n    { "c": "x,]}" }\n  ],\n  "d\\"q": { "e": true }\n}\n',
  '\uFEFF[ "é€😀", {"k\\u0041": [[], {}]}, -1.5e3 ]',
  '{\r\n"x": {"y": [0, [1, [2, {"z": "w"}]]]},\r\n"": 3, "a/b": 4, "m~n": 5}',
  '  42  ',
];
const pointers = ['', '/a', '/b', '/b/2', '/b/2/c', '/b/9', '/d/e', '/d"q/e', '/0', '/1/kA/1', '/2', '/x/y/1/1/1/z', '/', '/a~1b', '/m~0n', '/nope/deeper', '/x/y/7/q'];

describe('locateInJson', () => {
  test('gives the positions of the YAML tree, for values and keys', () => {
    expect(locateInJson(texts[0]!, '/b/2/c', false)).toEqual({ line: 1, col: 22 });
    expect(locateInJson(texts[0]!, '/b/2/c', true)).toEqual({ line: 1, col: 18 });
    for (const text of texts) {
      const tree = parseConfig(Buffer.from(text), 'json', 'x');
      const plain = text.startsWith('\uFEFF') ? text.slice(1) : text;
      for (const pointer of pointers) {
        for (const key of [false, true]) {
          expect(locateInJson(plain, pointer, key), `${JSON.stringify(text)} ${pointer} key=${key}`).toEqual(tree.locate(pointer, { key }));
        }
      }
    }
  });
});
