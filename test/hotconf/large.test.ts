// Large configs are parsed in a worker thread (workerThresholdBytes): the pipeline gives the same values and the
// same errors, at the same line:col, as when everything is parsed in process; close() ends the worker.
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers.js';
import { start, world } from './fixtures.js';

const LIST_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array', items: { type: 'object', additionalProperties: false, properties: { id: { type: 'integer', maximum: 100000 }, name: { type: 'string' } } } } },
};
const items = (n: number, bad?: number) => Array.from({ length: n }, (_, i) => ({ id: i === bad ? 1e9 : i, name: `item-${i}` }));
const asYaml = (list: ReturnType<typeof items>) => `items:\n${list.map((i) => `  - id: ${i.id}\n    name: ${i.name}\n`).join('')}`;
const threads = async () => (await readdir('/proc/self/task')).length;

describe('large files (worker thread)', () => {
  for (const format of ['yaml', 'json'] as const) {
    it(`a ${format} file over the threshold loads, and an invalid one is refused at the same line:col as in process`, async () => {
      await using w = await world();
      await w.schema('big', LIST_SCHEMA);
      const text = (bad?: number) => (format === 'yaml' ? asYaml(items(4000, bad)) : JSON.stringify({ items: items(4000, bad) }, null, 2));
      expect(text().length).toBeGreaterThan(65_536);
      await w.config(`big.${format}`, text());
      const before = await threads();
      const errorOf = async (workerThresholdBytes: number) => {
        await using hot = await start(w, { workerThresholdBytes });
        expect(hot.get('big')).toEqual({ items: items(4000) });
        if (workerThresholdBytes !== Infinity) expect(await threads()).toBeGreaterThan(before);
        await w.configAtomic(`big.${format}`, text(3210));
        const st = await until(() => hot.status().configs.find((c) => c.name === 'big' && c.state === 'error'), 'big in error');
        expect(hot.get('big')).toEqual({ items: items(4000) });
        await w.configAtomic(`big.${format}`, text());
        await until(() => hot.status().errors === 0, 'big valid again');
        return st.error;
      };
      const offThread = await errorOf(65_536);
      const inProcess = await errorOf(Infinity);
      expect(offThread).toMatchObject({ code: 'E_SCHEMA', pointer: '/items/3210/id' });
      expect(offThread?.line).toBeGreaterThan(3210);
      expect(offThread).toEqual(inProcess);
      // close() (by `await using`) ended the worker thread
      await until(async () => (await threads()) <= before, 'worker threads to end');
    });
  }
});
