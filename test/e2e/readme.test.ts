// The README's library quick-start really runs: extracted from README.md, compiled, executed with Node.
import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';
import { tempDir, until } from '../helpers.js';

const root = path.resolve(import.meta.dirname, '..', '..');

it('the library quick-start in README.md runs as written', async () => {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library quick-start'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code).toBeDefined();
  await using tmp = await tempDir();
  await cp(path.join(root, 'config'), tmp.file('config'), { recursive: true });
  await cp(path.join(root, 'schemas'), tmp.file('schemas'), { recursive: true });
  const js = ts.transpileModule(code!, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
  }).outputText.replace(`from 'hotconf'`, `from '${pathToFileURL(path.join(root, 'dist', 'index.js')).href}'`);
  await writeFile(tmp.file('quickstart.mjs'), js);

  const child = spawn(process.execPath, ['quickstart.mjs'], { cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await until(() => err.includes('hotconf ready'), 'the quick-start to load its config');
    const app = await readFile(tmp.file('config/app.yaml'), 'utf8');
    await tmp.writeAtomic('config/app.yaml', app.replace('port: 8080', 'port: 9090'));
    expect(await exited).toBe(0);
  } finally {
    child.kill();
  }
  expect(out).toMatch(/v2: app changed/);
  expect(out).toMatch(/port: 9090/);
  expect(out).toMatch(/ok/);
});
