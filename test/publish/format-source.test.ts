// publish.format 'source': a reader gets byte for byte what was validated, under the source's own file name.
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { checkPublish } from '../../src/publish/writer.js';
import { until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { APP_SCHEMA } from './fixtures.js';

it("format 'source': every config under its source name with its exact bytes (comments, no defaults written in); a comment edit is republished", async () => {
  await using w = await world();
  await w.schema('prometheus', APP_SCHEMA);
  await w.schema('feat', APP_SCHEMA);
  await w.schema('db/primary', APP_SCHEMA);
  const prom = '# scrape settings\nport: 1   # spaced comment\r\n';
  const feat = '{ "port":2 }';
  await w.config('prometheus.yml', prom);
  await w.config('feat.json', feat);
  await w.config('db/primary.yaml', 'port: 3\n');
  await using hot = await start(w, { useDefaults: true, keepSource: true });
  const out = w.tmp.file('out');
  await using pub = await startPublisher(hot, { publish: { dir: out, format: 'source' } });

  expect(await readFile(path.join(out, 'prometheus.yml'), 'utf8')).toBe(prom);
  expect(await readFile(path.join(out, 'feat.json'), 'utf8')).toBe(feat);
  expect(await readFile(path.join(out, 'db', 'primary.yaml'), 'utf8')).toBe('port: 3\n');
  expect(await readlink(path.join(out, 'prometheus.yml'))).toBe('..data/prometheus.yml');
  expect((await readdir(out)).filter((e) => !e.startsWith('..')).sort()).toEqual(['db', 'feat.json', 'prometheus.yml']);
  // the value served keeps its filled-in default; the published bytes are the source's
  expect(hot.get('prometheus')).toEqual({ port: 1, host: 'localhost' });

  const edited = '# scrape settings, reworded\nport: 1   # spaced comment\r\n';
  await w.configAtomic('prometheus.yml', edited);
  await until(() => hot.version === 2, 'the comment edit is a new version');
  await pub.idle();
  expect(await readFile(path.join(out, 'prometheus.yml'), 'utf8')).toBe(edited);
});

it("format 'source' without the source text kept fails the publish and says why; it cannot redact", async () => {
  await using w = await world();
  await w.schema('app', APP_SCHEMA);
  await w.config('app.yaml', 'port: 1\n');
  await using hot = await start(w);
  const failures: boolean[] = [];
  await using _pub = await startPublisher(hot, { publish: { dir: w.tmp.file('out'), format: 'source' }, logger: hot.logs.logger, onResult: (_k, ok) => void failures.push(ok) });
  await until(() => failures.length > 0, 'the publish result');
  expect(failures).toEqual([false]);
  expect(JSON.stringify(hot.logs.lines)).toMatch(/has no source text to publish \(publish\.format source needs the library option keepSource\)/);
  expect(() => checkPublish({ dir: '/tmp/x', format: 'source', redactSecrets: true })).toThrow(/cannot redact secrets/);
});
