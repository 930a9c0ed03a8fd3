// Issue 14 (README "The application check"): event -> commit latency (the pipeline's latencyMs) of 30 edits of a
// prometheus.yml, without and with validate.command (promtool check config). usage: node bench/appcheck/commit-latency.mjs [dist]
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, rename, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onJsonLines } from '../lines.mjs';
const BIN = path.resolve(process.argv[2] ?? 'dist', 'cli/main.js');
async function run(withCheck) {
  const dir = await mkdtemp(path.join(tmpdir(), 'hc-measure-'));
  await mkdir(`${dir}/config`); await mkdir(`${dir}/schemas`);
  await writeFile(`${dir}/schemas/prometheus.schema.json`, '{"type":"object"}');
  const cfg = (i) => `global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: j${i}\n    static_configs: [{targets: ["127.0.0.1:${9000 + i}"]}]\n`;
  await writeFile(`${dir}/config/prometheus.yml`, cfg(0));
  await writeFile(`${dir}/hotconf.yaml`, withCheck ? 'validate:\n  command: [promtool, check, config, "{dir}/prometheus.yml"]\n' : '{}\n');
  const child = spawn(process.execPath, [BIN, 'run', '--config', `${dir}/hotconf.yaml`, '--config-dir', `${dir}/config`, '--schema-dir', `${dir}/schemas`, '--publish-dir', `${dir}/pub`, '--publish-format', 'source'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const commits = [];
  onJsonLines(child.stdout, (l) => { if (l.msg === 'config committed') commits.push(l); });
  while (commits.length < 1) await new Promise((r) => setTimeout(r, 20));
  for (let i = 1; i <= 30; i++) {
    await writeFile(`${dir}/config/.tmp`, cfg(i)); await rename(`${dir}/config/.tmp`, `${dir}/config/prometheus.yml`);
    while (commits.length < i + 1) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  const lat = commits.slice(1).map((c) => c.latencyMs).sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  console.log(withCheck ? 'with validate.command (promtool)' : 'without validate.command', { n: lat.length, median: q(0.5), p90: q(0.9), max: lat.at(-1) });
}
await run(false);
await run(true);
