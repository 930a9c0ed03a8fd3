// Charts for BENCHMARKS.md, drawn from the bench's own results (bench/results/*.json) with vega-lite, rendered
// to SVG headless by vega (no browser, no canvas). Called by run.mjs after the suites; `node bench/charts.mjs`
// redraws them from the stored results. Returns the charts drawn, as { file, title } for the markdown.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import { compile } from 'vega-lite';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const chartsDir = path.join(root, 'bench', 'charts');

async function results(id) {
  try {
    return JSON.parse(await readFile(path.join(root, 'bench', 'results', `${id}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

async function render(file, spec) {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  await writeFile(path.join(chartsDir, file), `${svg}\n`);
}

/** Empirical CDF points of one sample, thinned to at most ~200 quantiles (the SVG stays small). */
function cdf(label, values) {
  const s = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  const points = [];
  const step = Math.max(1, Math.floor(s.length / 200));
  for (let i = 0; i < s.length; i += step) points.push({ contender: label, ms: Math.max(s[i], 0.01), fraction: (i + 1) / s.length });
  if (s.length) points.push({ contender: label, ms: Math.max(s.at(-1), 0.01), fraction: 1 });
  return points;
}

const BASE = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 560, height: 300, background: 'white' };

export async function drawCharts() {
  await mkdir(chartsDir, { recursive: true });
  const drawn = [];
  const lat = await results('latency');
  if (lat?.changeLatency) {
    const values = lat.changeLatency.filter((c) => c.latencies?.length).flatMap((c) => cdf(c.label, c.latencies));
    await render('latency-cdf.svg', {
      ...BASE,
      title: { text: 'Change latency, atomic save → consumer notified (CDF)', subtitle: `latency suite, ${lat.machine.date.slice(0, 10)}, ${lat.full ? 'full' : 'quick'}` },
      data: { values },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'ms', type: 'quantitative', title: 'latency (ms, log scale)', scale: { type: 'log' } },
        y: { field: 'fraction', type: 'quantitative', title: 'fraction of changes seen', axis: { format: '%' } },
        color: { field: 'contender', type: 'nominal', legend: { orient: 'bottom', columns: 2, title: null, labelLimit: 320 } },
      },
    });
    drawn.push({ file: 'latency-cdf.svg', title: 'Change latency CDF: fs.watch, spf13/viper, chokidar, hotconf' });
  }
  const sc = (await results('scale'))?.scale;
  if (sc?.length) {
    const values = sc.map((x) => ({ files: x.n, 'initial load (ms)': x.loadMs, 'RSS after load (MB)': x.rssAfterLoadMB }));
    const xAxis = { field: 'files', type: 'quantitative', title: 'config files (log scale)', scale: { type: 'log' } };
    await render('scale-load.svg', {
      ...BASE,
      height: 240,
      title: 'Initial load time against number of config files',
      data: { values },
      mark: { type: 'line', point: true },
      encoding: { x: xAxis, y: { field: 'initial load (ms)', type: 'quantitative', scale: { type: 'log' }, title: 'initial load (ms, log scale)' } },
    });
    await render('scale-rss.svg', {
      ...BASE,
      height: 240,
      title: 'RSS after the initial load against number of config files',
      data: { values },
      mark: { type: 'line', point: true },
      encoding: { x: xAxis, y: { field: 'RSS after load (MB)', type: 'quantitative', title: 'RSS after load (MB)', scale: { zero: true } } },
    });
    drawn.push({ file: 'scale-load.svg', title: 'Initial load time vs number of files' }, { file: 'scale-rss.svg', title: 'RSS after load vs number of files' });
  }
  const fp = await results('footprint');
  if (fp?.rss) {
    const bare = fp.rss.bareKiB.reduce((a, b) => a + b, 0) / fp.rss.bareKiB.length / 1024;
    const values = [{ what: 'bare Node (idle)', when: 'after start', MiB: bare }];
    for (const [mode, label] of [['files', 'run (files)'], ['http', 'run --http'], ['etcd', 'run --etcd'], ['files+semi', 'run, semi-space 1'], ['http+semi', 'run --http, semi-space 1'], ['etcd+semi', 'run --etcd, semi-space 1']]) {
      const x = fp.rss[mode];
      if (!x) continue;
      values.push({ what: label, when: 'after start', MiB: x.afterStartKiB / 1024 });
      if (Number.isFinite(x.afterChangesKiB)) values.push({ what: label, when: 'after 1,000 changes', MiB: x.afterChangesKiB / 1024 });
    }
    await render('footprint-rss.svg', {
      ...BASE,
      height: 300,
      title: 'Idle RSS per mode against bare Node (same run; semi-space 1: NODE_OPTIONS=--max-semi-space-size=1)',
      data: { values },
      mark: 'bar',
      encoding: {
        y: { field: 'what', type: 'nominal', title: null, sort: null },
        yOffset: { field: 'when' },
        x: { field: 'MiB', type: 'quantitative', title: 'RSS (MiB)' },
        color: { field: 'when', type: 'nominal', legend: { orient: 'bottom', title: null } },
      },
    });
    drawn.push({ file: 'footprint-rss.svg', title: 'Idle RSS per mode' });
  }
  return drawn;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const c of await drawCharts()) console.error('[bench] chart', c.file);
}
