// The last step of `npm run build`: dist/cli/main.js, as tsc wrote it, becomes one bundled file (plus the chunks of
// what it imports lazily: the HTTP shell, metrics, publish), made by esbuild from tsc's own output. Measured
// (bench/FINDINGS.md): `hotconf check` spent most of its wall time resolving, reading and compiling ~240 modules
// (ajv 87, yaml 73, commander, hotconf's own); a bundle is one read and one compile. The library (dist/index.js
// and the rest of dist/) stays as tsc wrote it, unbundled: only the CLI's entry is replaced.
//
// What stays outside the bundle, loaded from node_modules as before: the packages only a mode needs (fastify,
// prom-client, etcd3, pino and pino-pretty, unix-dgram's native addon, chokidar, and whatever is imported with
// import(): eventsource, cockatiel, json-schema-to-typescript…), the parse worker
// (dist/load/worker.js, its own thread) and the generated validators (dist/generated, required by path).
// hotconf's lazy `require`s (`const require = createRequire(import.meta.url)`) are turned into plain
// `require` calls for esbuild, which then bundles what they load and still runs it only on first use.
import { build } from 'esbuild';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const cliDir = path.join(root, 'dist', 'cli');
const entry = path.join(cliDir, 'main.js');
const MARK = '// hotconf: bundled by scripts/bundle-cli.mjs';

const source = await readFile(entry, 'utf8');
if (source.slice(0, 200).includes(MARK)) {
  process.stderr.write('bundle-cli: dist/cli/main.js is already bundled (run tsc first)\n');
  process.exit(0);
}

const EXTERNAL = ['fastify', 'prom-client', 'etcd3', 'pino', 'pino-pretty', 'eventsource', 'unix-dgram', 'chokidar', 'light-my-request', 'cockatiel', '@fastify/*'];
// Also every package hotconf's code imports with import() (found in dist/): esbuild makes a CommonJS package
// imported so a chunk with only a default export (`const { compile } = await import(…)` would find nothing), and
// each is for one mode anyway.
for (const e of await readdir(path.join(root, 'dist'), { recursive: true, withFileTypes: true })) {
  if (!e.isFile() || !e.name.endsWith('.js') || /^chunk-/.test(e.name)) continue;
  for (const m of (await readFile(path.join(e.parentPath, e.name), 'utf8')).matchAll(/\bimport\('([^.'][^']*)'\)/g)) {
    if (!m[1].startsWith('node:') && !EXTERNAL.includes(m[1])) EXTERNAL.push(m[1]);
  }
}
const LAZY_REQUIRE = /^const require = createRequire\(import\.meta\.url\);$/m;

const result = await build({
  entryPoints: { main: entry },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: cliDir,
  // Chunks beside main.js: code that finds files relative to import.meta.url (the package root, dist/generated,
  // the parse worker) sits at the same depth as in dist/<dir>/.
  chunkNames: 'chunk-[hash]',
  write: false,
  external: EXTERNAL,
  legalComments: 'none',
  // No comments and no indentation: V8 keeps a module's whole source text in the heap, and hotconf's comments
  // hold non-ASCII characters (—, →) that would make it a two-byte string (the bundle's 1.2 MB took 2.4 MB).
  minifyWhitespace: true,
  charset: 'ascii',
  // Not keepNames (its __name calls cost ~80 ms of `check`): a renamed class of hotconf's own is refused below
  // instead (errors.ts names each error after its class: new.target.name).
  logLevel: 'warning',
  // Packages' own dynamic requires (and the generated validators, required by path) use Node's require.
  banner: { js: `${MARK}\nimport { createRequire as __hotconfCreateRequire } from 'node:module';\nconst require = __hotconfCreateRequire(import.meta.url);` },
  plugins: [{
    name: 'hotconf-lazy-require',
    setup(b) {
      b.onLoad({ filter: /[/\\]dist[/\\].*\.js$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        return { contents: text.replace(LAZY_REQUIRE, '').replace(/^import \{ createRequire \} from 'node:module';$/m, ''), loader: 'js' };
      });
    },
  }],
});

// esbuild renames a top-level name that two modules share (Parser → Parser2): refuse it for hotconf's classes.
const own = new Set();
for (const e of await readdir(path.join(root, 'dist'), { recursive: true, withFileTypes: true })) {
  if (!e.isFile() || !e.name.endsWith('.js') || e.parentPath === cliDir) continue;
  for (const m of (await readFile(path.join(e.parentPath, e.name), 'utf8')).matchAll(/^(?:export )?class (\w+)/gm)) own.add(m[1]);
}
for (const file of result.outputFiles) {
  for (const m of file.text.matchAll(/\bclass (\w+?)(\d+)\b/g)) {
    if (own.has(m[1]) && !own.has(m[1] + m[2])) throw new Error(`bundle-cli: hotconf's class ${m[1]} was renamed ${m[1]}${m[2]} in the bundle; rename one of the two`);
  }
}

for (const e of await readdir(cliDir)) if (/^chunk-.*\.js$/.test(e)) await rm(path.join(cliDir, e));
for (const file of result.outputFiles) await writeFile(file.path, file.contents, { mode: file.path === entry ? 0o755 : 0o644 });
process.stderr.write(`bundle-cli: ${result.outputFiles.map((f) => `${path.relative(root, f.path)} ${(f.contents.length / 1024).toFixed(0)} kB`).join(', ')}\n`);
