// The CLI as `npm run build` leaves it (scripts/bundle-cli.mjs: one esbuild bundle whose code sits in dist/cli/,
// not in dist/load/): what it finds by path still works from there — the parse worker thread (dist/load/worker.js)
// for files over workerThresholdBytes, the generated validators and the package's own files.
import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { BIN, hotconf } from './cli-helpers.js';

it('`hotconf check` parses a config over workerThresholdBytes (64 KiB by default) in the worker thread: its value, and a duplicate key at its line:col', async () => {
  await using tmp = await tempDir();
  await tmp.write('schemas/big.schema.json', JSON.stringify({ type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }));
  await tmp.write('schemas/dup.schema.json', JSON.stringify({ type: 'object' }));
  const pad = 'x'.repeat(100_000);
  await tmp.write('config/big.yaml', `n: 1\npad: ${pad}\n`);
  await tmp.write('config/dup.json', `{\n  "pad": "${pad}",\n  "a": 1,\n  "a": 2\n}\n`);
  const args = ['check', '--config-dir', tmp.file('config'), '--schema-dir', tmp.file('schemas')];
  const r = await hotconf(args, { cwd: tmp.dir });
  expect(r.stdout + r.stderr).toMatch(/config\/dup\.json:4:3: duplicate key/);
  expect(r.stdout + r.stderr).not.toMatch(/big\.yaml/);
  expect(r.stdout).toMatch(/2 config\(s\) checked, 1 invalid/);
  expect(r.code).toBe(1);
  // Whether bundled or not (a build by tsc alone), the same entry point is what the package's bin names.
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: { hotconf: string } };
  expect(BIN.endsWith(pkg.bin.hotconf.replace(/^\.\//, ''))).toBe(true);
});
