#!/usr/bin/env node
// Conformance counts for the closing notes of schema work (not a benchmark: nothing here is timed).
//
//   node bench/conformance.mjs [--api <hotconf build>/index.js] [--all-schemastore <SchemaStore git dir>]
//
// Runs test/conformance/ (JSON-Schema-Test-Suite per draft, the vendored SchemaStore schemas with their own
// examples) against a build of hotconf (default: this checkout's dist/, built first with `npm run build`;
// `--api /other/checkout/dist/index.js` measures another one, e.g. main before a change) and prints, per draft
// and per schema: documents judged as their authors expect by hotconf and by plain non-strict ajv, how many
// verdicts agree, and how many documents met a compiled schema. With --all-schemastore, also how many of all
// SchemaStore schemas compile (each on its own), in hotconf and in plain ajv: slow (minutes).
// Failing tests are expected while hotconf differs from ajv: the counts are printed either way.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const api = path.resolve(arg('--api') ?? path.join(root, 'dist', 'index.js'));
const mirror = arg('--all-schemastore');
const out = await mkdtemp(path.join(os.tmpdir(), 'hotconf-conformance-report-'));

const files = ['test/conformance/json-schema-test-suite.test.ts', 'test/conformance/schemastore.test.ts'];
if (mirror) files.push('test/conformance/schemastore-all.test.ts');
console.error(`[conformance] hotconf from ${api}`);
const run = spawnSync('npx', ['vitest', 'run', ...files], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: {
    ...process.env,
    HOTCONF_CONFORMANCE_API: api,
    HOTCONF_CONFORMANCE_REPORT: out,
    ...(mirror ? { HOTCONF_SCHEMASTORE_MIRROR: path.resolve(mirror) } : {}),
  },
});
console.error(`[conformance] vitest exited ${run.status} (failures are the differences counted below)`);

const pct = (n, total) => `${((100 * n) / Math.max(total, 1)).toFixed(0)}%`;
for (const suite of ['json-schema-test-suite', 'schemastore']) {
  let data;
  try {
    data = JSON.parse(await readFile(path.join(out, `${suite}.json`), 'utf8'));
  } catch {
    console.log(`\n${suite}: no report (the test file did not get to its end; see vitest's output)`);
    continue;
  }
  console.log(`\n${suite} (hotconf: ${api})`);
  console.log('| | documents | hotconf as expected | plain ajv as expected | hotconf = ajv (deliberate differences) | schema compiled (hotconf / ajv) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [key, t] of data.tallies) {
    if (t.total === 0) continue;
    console.log(
      `| ${key} | ${t.total} | ${t.hotconf} (${pct(t.hotconf, t.total)}) | ${t.plain} (${pct(t.plain, t.total)}) | ${t.agree}` +
        `${Object.keys(t.differences ?? {}).length ? ` (${Object.entries(t.differences).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''} | ${t.hotconfCompiled} / ${t.plainCompiled} |`,
    );
  }
  if (data.skipped?.length) console.log(`(${data.skipped.length} groups left out: $ref to a remote the suite serves over HTTP)`);
}
if (mirror) {
  try {
    const all = JSON.parse(await readFile(path.join(out, 'schemastore-all.json'), 'utf8'));
    console.log(`\nAll SchemaStore schemas (${all.schemas} files, ${all.read} readable in the mirror; each compiled on its own):`);
    console.log(`  hotconf compiles ${all.hotconfCompiles}, plain non-strict ajv ${all.plainCompiles}`);
    console.log(`  compiled by plain ajv but not by hotconf: ${all.onlyPlainCompiles.length}`);
    for (const line of all.onlyPlainCompiles.slice(0, 40)) console.log(`    ${line}`);
  } catch {
    console.log('\nall SchemaStore schemas: no report');
  }
}
await rm(out, { recursive: true, force: true });
