// Prometheus (the Debian package) behind the real sidecar: hotconf publishes its source bytes (`--publish-format
// source`), asks `promtool check config` before each commit (`validate.command`), and POSTs /-/reload. What
// Prometheus runs is read from its own API; what it starts with after a restart is what hotconf published.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { tempDir, until, type TempDir } from '../helpers.js';
import { hotconf, startHotconf } from './cli-helpers.js';

const PROMETHEUS = '/usr/bin/prometheus';
const haveProm = await access(PROMETHEUS).then(
  () => true,
  () => false,
);

/** SchemaStore's schema of prometheus.yml (vendored, as published): a third party's idea of a valid file. */
const SCHEMA_FILE = path.join(import.meta.dirname, '..', 'vendor', 'schemastore', 'schemas', 'prometheus.json');

const job = (name: string, port: number) => `  # the ${name} job\n  - job_name: ${name}\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`;
const config = (jobs: string, interval = '15s') => `# prometheus.yml, written by hand (comments are part of the bytes)\nglobal:\n  scrape_interval: ${interval}\nscrape_configs:\n${jobs}`;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

function startPrometheus(configFile: string, tsdb: string, port: number): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(PROMETHEUS, ['--web.enable-lifecycle', '--config.file', configFile, '--storage.tsdb.path', tsdb, '--web.listen-address', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

async function stop(p: { child: ChildProcess; exited: Promise<number | null> }): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
}

/** The configuration Prometheus runs, from its own API. */
async function running(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/status/config`);
  return ((await res.json()) as { data: { yaml: string } }).data.yaml;
}

interface Status {
  version: number;
  errors: number;
  configs: Array<{ name: string; state: string; errors: Array<{ code: string; message: string }> }>;
}

it.skipIf(!haveProm)(
  'Prometheus gets the accepted edits, never a schema-invalid one nor one promtool refuses (the reason is in /v1/status), and restarts on what was published',
  async () => {
    await using tmp: TempDir = await tempDir('hotconf-prom-');
    await mkdir(tmp.file('schemas'));
    await copyFile(SCHEMA_FILE, tmp.file('schemas/prometheus.schema.json'));
    const v1 = config(job('prometheus', 9090));
    await tmp.write('config/prometheus.yml', v1);
    await tmp.write('etc/hotconf.yaml', `validate:\n  command: [promtool, check, config, "{dir}/prometheus.yml"]\n  timeoutMs: 10000\n`);
    const published = tmp.file('published/prometheus.yml');
    const promPort = await freePort();

    await using d = startHotconf([
      'run',
      '--config',
      tmp.file('etc/hotconf.yaml'),
      '--config-dir',
      tmp.file('config'),
      '--schema-dir',
      tmp.file('schemas'),
      '--http',
      '127.0.0.1:0',
      '--publish-dir',
      tmp.file('published'),
      '--publish-format',
      'source',
      '--notify-webhook',
      `http://127.0.0.1:${promPort}/-/reload`,
    ]);
    // Started once hotconf has published (it reads its config file at start).
    let prom: ReturnType<typeof startPrometheus> | undefined;
    try {
      const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
      const status = async () => (await (await fetch(`${url}/v1/status`)).json()) as Status;
      // Published under its own name, byte for byte.
      await until(async () => (await readFile(published, 'utf8')) === v1, 'v1 published as prometheus.yml');
      expect(await readFile(published)).toEqual(await readFile(tmp.file('config/prometheus.yml')));
      prom = startPrometheus(published, tmp.file('tsdb'), promPort);
      await until(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok, 'Prometheus ready', { timeoutMs: 30_000 });
      expect(await running(promPort)).toMatch(/job_name: prometheus/);

      // An accepted edit reaches Prometheus through the webhook.
      const v2 = config(job('prometheus', 9090) + job('node', 9100));
      await tmp.writeAtomic('config/prometheus.yml', v2);
      await until(async () => /job_name: node/.test(await running(promPort)), 'Prometheus runs v2', { timeoutMs: 20_000 });
      expect(await readFile(published, 'utf8')).toBe(v2);
      const accepted = (await status()).version;

      // A schema-invalid edit (a duration that is a bare number): refused, never published, Prometheus keeps v2.
      await tmp.writeAtomic('config/prometheus.yml', config(job('prometheus', 9090) + job('node', 9100) + job('late', 9200), '5'));
      await until(async () => (await status()).configs.find((c) => c.name === 'prometheus')?.errors[0]?.code === 'E_SCHEMA', 'the schema refusal in /v1/status');

      // An edit every schema accepts and promtool refuses: two jobs named node.
      await tmp.writeAtomic('config/prometheus.yml', config(job('prometheus', 9090) + job('node', 9100) + job('node', 9101)));
      const refused = await until(async () => {
        const s = await status();
        const e = s.configs.find((c) => c.name === 'prometheus')?.errors[0];
        return e?.code === 'E_APP_CHECK' ? { s, e } : undefined;
      }, 'the application check refusal in /v1/status');
      expect(refused.e.message).toContain('found multiple scrape configs with job name "node"');
      expect(refused.s.errors).toBe(1);
      expect(refused.s.version).toBe(accepted);
      expect(await readFile(published, 'utf8')).toBe(v2);
      const prometheusRuns = await running(promPort);
      expect(prometheusRuns).toMatch(/job_name: node/);
      expect(prometheusRuns).not.toMatch(/127\.0\.0\.1:9101|job_name: late/);
      const refusal = d.lines.find((l) => l.msg === 'batch rejected; last good config stays live' && JSON.stringify(l.errors).includes('E_APP_CHECK'));
      expect(JSON.stringify(refusal)).toContain('found multiple scrape configs');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/hotconf_reload_failures_total\{reason="E_APP_CHECK"\} [1-9]/);

      // `hotconf check` runs the same command on the directory it checks.
      const checked = await hotconf(['check', '--config', tmp.file('etc/hotconf.yaml'), '--config-dir', tmp.file('config'), '--schema-dir', tmp.file('schemas')]);
      expect(checked.code).toBe(1);
      expect(checked.stdout).toContain('refused by the application check');
      expect(checked.stdout).toContain('found multiple scrape configs with job name "node"');

      // Prometheus restarted now starts on what hotconf published (v2).
      await stop(prom);
      prom = startPrometheus(published, tmp.file('tsdb'), promPort);
      await until(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok, 'Prometheus ready again', { timeoutMs: 30_000 });
      expect(await running(promPort)).toMatch(/job_name: node/);

      // Fixed: the tree passes again, commits, and reaches the restarted Prometheus.
      const v3 = config(job('prometheus', 9090) + job('node', 9100) + job('node2', 9101));
      await tmp.writeAtomic('config/prometheus.yml', v3);
      await until(async () => /job_name: node2/.test(await running(promPort)), 'Prometheus runs v3', { timeoutMs: 20_000 });
      expect(await readFile(published, 'utf8')).toBe(v3);
      expect((await status()).errors).toBe(0);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- prometheus output (tail) ---\n${prom?.output().slice(-3000) ?? '(not started)'}\n--- hotconf stderr ---\n${d.stderr().slice(-3000)}`, { cause: err });
    } finally {
      if (prom) await stop(prom);
    }
  },
  120_000,
);
