// ARCHITECTURE.md's module table as a test: every relative import in src/ follows an allowed arrow, the
// pipeline knows sources only as types, and nothing outside the sources and the wiring names a kind of source.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');

/** module → the modules it may import (values or types). Keep in step with ARCHITECTURE.md. */
const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  names: [],
  pointer: [],
  async: ['errors'],
  load: ['errors', 'names', 'pointer'],
  validate: ['errors', 'names', 'pointer', 'async', 'load'],
  store: ['errors', 'async'],
  options: ['errors', 'source', 'source/etcd', 'pipeline'],
  source: ['errors', 'names', 'load'],
  'source/files': ['source', 'errors', 'names', 'async', 'load', 'options'],
  'source/etcd': ['source', 'errors', 'names', 'async'],
  pipeline: ['source', 'errors', 'names', 'pointer', 'async', 'load', 'validate', 'store', 'options'],
  hotconf: ['pipeline', 'source', 'source/files', 'source/etcd', 'errors', 'names', 'async', 'load', 'validate', 'store', 'options'],
  check: ['pipeline', 'source/files', 'errors', 'names', 'async', 'load', 'validate', 'options'],
  index: ['hotconf', 'check', 'pipeline', 'source', 'source/files', 'source/etcd', 'store', 'errors', 'validate'],
  metrics: ['hotconf', 'store'],
  http: ['hotconf', 'store', 'metrics', 'errors', 'names', 'validate'],
  publish: ['hotconf', 'store', 'errors', 'names', 'async', 'validate'],
  daemon: ['hotconf', 'check', 'http', 'metrics', 'publish', 'source/etcd', 'options', 'errors', 'names', 'async', 'store', 'pipeline'],
  cli: ['daemon', 'index', 'source/etcd', 'options', 'names', 'load', 'validate'],
};

/** Imports that may only be types: these modules know the other only by its shape. */
const TYPES_ONLY: Record<string, readonly string[]> = {
  pipeline: ['source', 'store', 'options'],
  options: ['source', 'pipeline'],
  source: ['load'],
  metrics: ['hotconf', 'store'],
  http: ['hotconf', 'store'],
  publish: ['hotconf', 'store'],
};

function moduleOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  if (parts.length === 1) return parts[0]!.replace(/\.ts$/, '');
  if (parts[0] === 'source' && parts.length > 2) return `source/${parts[1]}`;
  return parts[0]!;
}

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

interface Edge {
  readonly from: string;
  readonly file: string;
  readonly to: string;
  readonly typeOnly: boolean;
}

async function edges(): Promise<Edge[]> {
  const out: Edge[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.[^']+)'|import\('(\.[^']+)'\)/g;
  for (const file of await sources(SRC)) {
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(re)) {
      const spec = m[2] ?? m[3]!;
      const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
      const [from, to] = [moduleOf(file), moduleOf(target)];
      if (from !== to) out.push({ from, file: path.relative(SRC, file), to, typeOnly: m[1] !== undefined });
    }
  }
  return out;
}

test('every import in src/ follows an arrow of the module table', async () => {
  const all = await edges();
  expect(all.length).toBeGreaterThan(50); // the parser sees the imports, or this test proves nothing
  const wrong = all.filter((e) => !(ALLOWED[e.from] ?? []).includes(e.to)).map((e) => `${e.file} imports ${e.to}`);
  expect(wrong).toEqual([]);
});

test('the pipeline and the shells know sources, the store and the facade only as types', async () => {
  const wrong = (await edges())
    .filter((e) => (TYPES_ONLY[e.from] ?? []).includes(e.to) && !e.typeOnly)
    .map((e) => `${e.file} imports a value from ${e.to}`);
  expect(wrong).toEqual([]);
});

test('nothing imports the daemon or the CLI but the CLI', async () => {
  const wrong = (await edges()).filter((e) => (e.to === 'daemon' || e.to === 'cli') && e.from !== 'cli').map((e) => `${e.file} imports ${e.to}`);
  expect(wrong).toEqual([]);
});

test("no module outside the sources asks which kind of source it has", async () => {
  const outside = (await sources(SRC)).filter((f) => !['source', 'source/files', 'source/etcd', 'hotconf', 'options', 'daemon', 'cli', 'check'].includes(moduleOf(f)));
  const asks: string[] = [];
  for (const file of outside) {
    const text = await readFile(file, 'utf8');
    for (const [i, line] of text.split('\n').entries()) {
      if (/kind\s*===?\s*'(files|etcd)'|instanceof\s+(EtcdSource|FilesSource|DirWatcher)/.test(line)) asks.push(`${path.relative(SRC, file)}:${i + 1}`);
    }
  }
  expect(asks).toEqual([]);
});
