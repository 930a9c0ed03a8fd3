// `npm start`'s prestart: builds dist/ only when it is missing or older than a source, so that starting the demo
// does not pay tsc's ~5 s each time. tsc rewrites every output, so dist/cli/main.js's mtime is the build's time.
// The settings schema and the validator generator are inputs too (dist/generated, scripts/build-validators.mjs).
import { spawnSync } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const mtime = (file) => stat(file).then((s) => s.mtimeMs, () => undefined);

const built = await mtime(path.join(root, 'dist', 'cli', 'main.js'));
let newest = 0;
const inputs = ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'schemas/hotconf.schema.json', 'scripts/build-validators.mjs', 'scripts/bundle-cli.mjs'].map((f) => path.join(root, f));
for (const e of await readdir(path.join(root, 'src'), { recursive: true, withFileTypes: true })) {
  if (e.isFile()) inputs.push(path.join(e.parentPath, e.name));
}
for (const file of inputs) newest = Math.max(newest, (await mtime(file)) ?? 0);

if (built === undefined || newest > built) {
  process.stderr.write(`hotconf: ${built === undefined ? 'no dist/ yet' : 'sources changed since the last build'}: building\n`);
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
