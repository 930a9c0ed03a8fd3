// Issue 18, the core's points (RELIABILITY.md section 7): errors capped per config whatever the file holds, a
// config that never reads stable, transient read errors, links out of configDir, directories past the depth
// limit, unusable config names. Real files, real links (to /proc), the real daemon as a child process over real
// HTTP, a real EMFILE (the daemon's own RLIMIT_NOFILE lowered with prlimit while it runs).
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkConfigs, createHotconf, InitialLoadError } from '../../src/index.js';
import { hotconf, startHotconf } from '../e2e/cli-helpers.js';
import { memoryLogger, tempDir, until } from '../helpers.js';
import { apiUrl, succeeds } from './fault-helpers.js';

const run = promisify(execFile);
const LIST_SCHEMA = JSON.stringify({ type: 'object', properties: { list: { type: 'array', items: { type: 'string' } } } });
const PORT_SCHEMA = JSON.stringify({ type: 'object', properties: { port: { type: 'integer' } }, required: ['port'] });

/** A config dir and a schema dir in a fresh temp dir. */
async function layout() {
  const tmp = await tempDir('hotconf-harden-');
  await mkdir(tmp.file('config'));
  await mkdir(tmp.file('schemas'));
  return {
    tmp,
    configDir: tmp.file('config'),
    schemaDir: tmp.file('schemas'),
    config: (rel: string, text: string) => tmp.writeAtomic(`config/${rel}`, text),
    schema: (name: string, text = PORT_SCHEMA) => tmp.write(`schemas/${name}.schema.json`, text),
    [Symbol.asyncDispose]: () => tmp[Symbol.asyncDispose](),
  };
}

const list = (values: number) => `{"list":[${Array(values).fill('1').join(',')}]}`;

interface StatusConfig {
  name: string;
  state: string;
  heldBy?: string[];
  errors: Array<{ code: string; message: string }>;
}
const statusOf = async (url: string) => (await (await fetch(`${url}/v1/status`)).json()) as { errors: number; configs: StatusConfig[] };

describe('1. errors are capped per config, whatever the file holds', { timeout: 120_000 }, () => {
  it('a 192 KiB {"list":[1,1,…]} against items: string: 20 errors and one "and more" in status, one bounded log event, /healthz answers', async () => {
    await using w = await layout();
    await w.schema('big', LIST_SCHEMA);
    await w.schema('small', LIST_SCHEMA);
    await w.config('big.json', '{"list":["ok"]}');
    await w.config('small.json', '{"list":["ok"]}');
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--no-pretty', '--batch-policy', 'per-file']);
    const url = await apiUrl(d);
    const logged = () => d.lines.map((l) => JSON.stringify(l).length).reduce((a, b) => a + b, 0);

    // 9,000 failing values: every error collected, the first 20 kept, the rest counted.
    let before = d.lines.length;
    await w.config('small.json', list(9_000));
    const small = await until(async () => (await statusOf(url)).configs.find((c) => c.name === 'small' && c.state === 'error'), 'small refused', { timeoutMs: 30_000 });
    expect(small.errors).toHaveLength(21);
    expect(small.errors.slice(0, 20).every((e) => e.code === 'E_SCHEMA' && /small\.json:1:\d+: \/list\/\d+: must be string$/.test(e.message))).toBe(true);
    expect(small.errors[20]).toMatchObject({ code: 'E_MORE_ERRORS' });
    expect(small.errors[20]!.message).toContain('and 8980 more errors');
    const refusals = () => d.lines.slice(before).filter((l) => Array.isArray(l.errors));
    await until(() => refusals().length === 1, 'the refusal logged');
    expect(refusals()[0]!.errors).toHaveLength(21);

    // 98,000 failing values (192 KiB): the document is checked up to its first error.
    before = d.lines.length;
    const logBefore = logged();
    let slowest = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t = performance.now();
        const res = await fetch(`${url}/healthz`);
        await res.arrayBuffer();
        slowest = Math.max(slowest, performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await w.config('big.json', list(98_000));
    const big = await until(async () => (await statusOf(url)).configs.find((c) => c.name === 'big' && c.state === 'error'), 'big refused', { timeoutMs: 30_000 });
    probing = false;
    await prober;
    expect(big.errors.length).toBeLessThanOrEqual(21);
    expect(big.errors.at(-1)!.code).toBe('E_MORE_ERRORS');
    const status = await (await fetch(`${url}/v1/status`)).text();
    expect(status.length).toBeLessThan(64 * 1024); // was 19.8 MB
    await until(() => refusals().length === 1, 'the refusal logged');
    expect(logged() - logBefore).toBeLessThan(16 * 1024); // was 55 MB
    expect(slowest).toBeLessThan(5_000); // a generous ceiling: it stalled for 5.5 s (1 MiB: 35 s)
    // The valid config still serves.
    expect((await fetch(`${url}/v1/configs/small`)).status).toBe(200);
  });

  it('hotconf check and checkConfigs print the first maxErrorsPerConfig errors, then "and M more"', async () => {
    await using w = await layout();
    await w.schema('big', LIST_SCHEMA);
    await w.config('big.json', list(5_000));
    const out = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(out.code).toBe(1);
    const lines = out.stdout.trim().split('\n').filter((l) => l.includes('big.json:'));
    expect(lines).toHaveLength(21); // 20 errors, then "and 4980 more"
    expect(lines[20]).toMatch(/big\.json: and 4980 more errors/);
    expect(out.stdout).toMatch(/1 config\(s\) checked, 1 invalid/);
    const report = await checkConfigs({ configDir: w.configDir, schemaDir: w.schemaDir, maxErrorsPerConfig: 3 });
    expect(report.errors.map((e) => e.code)).toEqual(['E_SCHEMA', 'E_SCHEMA', 'E_SCHEMA', 'E_MORE_ERRORS']);
  });
});

describe('2. a config that never reads stable', { timeout: 60_000 }, () => {
  it('env.yaml -> /proc/version: the initial load fails with E_UNSTABLE', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.schema('env', '{}');
    await w.config('app.yaml', 'port: 1\n');
    await symlink('/proc/version', path.join(w.configDir, 'env.yaml'));
    const { logger } = await memoryLogger('warn');
    const err = await createHotconf({ configDir: w.configDir, schemaDir: w.schemaDir, followExternalLinks: true, logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InitialLoadError);
    expect((err as InitialLoadError).errors.map((e) => e.code)).toEqual(['E_UNSTABLE']);
  });

  it('appearing while running: reported, logged, counted, no busy loop; it holds other configs back (heldBy) only under all-or-nothing', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.schema('env', '{}');
    await w.config('app.yaml', 'port: 1\n');
    const { logger, lines } = await memoryLogger('info');
    await using hot = await createHotconf({ configDir: w.configDir, schemaDir: w.schemaDir, followExternalLinks: true, logger, debounceMs: 10 });
    await symlink('/proc/version', path.join(w.configDir, 'env.yaml'));
    await until(() => hot.status().configs.find((c) => c.name === 'env')?.state === 'error', 'env refused');
    const env = hot.status().configs.find((c) => c.name === 'env')!;
    expect(env.error).toMatchObject({ code: 'E_UNSTABLE' });
    expect(hot.status().errors).toBe(1);
    expect(lines.some((l) => Array.isArray(l.errors) && (l.errors as Array<{ code: string }>).some((e) => e.code === 'E_UNSTABLE'))).toBe(true);
    // all-or-nothing: app's edit (made once env is refused, so the two cannot land in separate batches before it) is
    // held back, and says by whom
    await w.config('app.yaml', 'port: 2\n');
    await until(() => hot.status().configs.find((c) => c.name === 'app')?.state !== 'ok', 'app edit seen');
    const app = hot.status().configs.find((c) => c.name === 'app')!;
    expect(app).toMatchObject({ state: 'pending', heldBy: ['env'] });
    expect(lines.some((l) => Array.isArray(l.heldBy) && (l.heldBy as string[]).includes('env'))).toBe(true);
    // No retry loop: over 2 s the process spends a fraction of a core (it was 13-20 % forever).
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 2_000));
    const cpu = process.cpuUsage(cpu0);
    const share = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
    expect(share).toBeLessThan(0.1);
    // per-file: app applies; env stays refused
    hot.update({ batchPolicy: 'per-file' });
    await w.config('app.yaml', 'port: 3\n');
    await until(() => (hot.get('app') as { port: number } | undefined)?.port === 3, 'app applied under per-file');
    expect(hot.status().configs.find((c) => c.name === 'env')?.state).toBe('error');
  });
});

const prlimitWorks = await succeeds('prlimit', ['--pid', String(process.pid), '--nofile']);
if (!prlimitWorks) console.warn('SKIPPED EMFILE test: prlimit --pid is not available here');

describe('3. a transient read error is retried', { timeout: 60_000 }, () => {
  it.skipIf(!prlimitWorks)('EMFILE (the daemon out of file descriptors, prlimit): the edit is refused, then applied once descriptors are back, with no further edit', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--no-pretty', '--batch-policy', 'per-file']);
    const url = await apiUrl(d);
    const pid = d.child.pid!;
    const { stdout } = await run('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings', '--output', 'SOFT,HARD']);
    const [soft, hard] = stdout.trim().split(/\s+/);
    // Descriptors 0-2 are taken: with a limit of 3 the daemon's next open() fails with EMFILE.
    expect((await readdir(`/proc/${pid}/fd`)).length).toBeGreaterThan(3);
    await run('prlimit', ['--pid', String(pid), `--nofile=3:${hard}`]);
    try {
      await w.config('app.yaml', 'port: 2\n');
      await d.line((l) => JSON.stringify(l).includes('EMFILE'), 'the EMFILE refusal logged', 20_000);
      // Through two verify sweeps: a sweep that cannot list a directory reads its schema again, which fails too.
      await new Promise((r) => setTimeout(r, 2_500));
    } finally {
      await run('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
    }
    await until(async () => ((await (await fetch(`${url}/v1/configs/app`)).json()) as { port: number }).port === 2, 'the edit applied after the fault', { timeoutMs: 20_000 });
    expect((await statusOf(url)).errors).toBe(0);
  });
});

describe('8. symlinks out of configDir', { timeout: 60_000 }, () => {
  it('a file link and a directory link to outside are refused (E_LINK_OUTSIDE); followExternalLinks follows them; links inside (..data) work', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.schema('stolen');
    await w.schema('ext/db');
    await w.schema('k8s');
    await w.config('app.yaml', 'port: 1\n');
    await w.tmp.write('secret/stolen.yaml', 'port: 6\n');
    await w.tmp.write('foreign/db.yaml', 'port: 7\n');
    await symlink(w.tmp.file('secret/stolen.yaml'), path.join(w.configDir, 'stolen.yaml'));
    await symlink(w.tmp.file('foreign'), path.join(w.configDir, 'ext'));
    // the Kubernetes ConfigMap layout: k8s.yaml -> ..data/k8s.yaml, ..data -> ..2024_01
    await w.tmp.write('config/..2024_01/k8s.yaml', 'port: 8\n');
    await symlink('..2024_01', path.join(w.configDir, '..data'));
    await symlink('..data/k8s.yaml', path.join(w.configDir, 'k8s.yaml'));
    // The config dir is itself reached through a link.
    const linkedDir = w.tmp.file('linked-config');
    await symlink(w.configDir, linkedDir);

    const refused = await createHotconf({ configDir: linkedDir, schemaDir: w.schemaDir, logger: (await memoryLogger()).logger }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InitialLoadError);
    const errors = (refused as InitialLoadError).errors;
    expect(errors.map((e) => [e.code, path.basename(e.file)]).sort()).toEqual([['E_LINK_OUTSIDE', 'db.yaml'], ['E_LINK_OUTSIDE', 'stolen.yaml']]);
    expect(errors[0]!.message).not.toContain('secret/'); // the target is not shown

    await using hot = await createHotconf({ configDir: linkedDir, schemaDir: w.schemaDir, startWithValid: true, logger: (await memoryLogger()).logger });
    expect(hot.get('app')).toEqual({ port: 1 });
    expect(hot.get('k8s')).toEqual({ port: 8 });
    expect(hot.get('stolen')).toBeUndefined();
    expect(hot.get('ext/db')).toBeUndefined();
    expect(hot.status().configs.filter((c) => c.state === 'error').map((c) => c.name)).toEqual(['ext/db', 'stolen']);

    await using follow = await createHotconf({ configDir: linkedDir, schemaDir: w.schemaDir, followExternalLinks: true, logger: (await memoryLogger()).logger });
    expect(follow.get('stolen')).toEqual({ port: 6 });
    expect(follow.get('ext/db')).toEqual({ port: 7 });

    // The CLI: refused by default, followed with the flag.
    const check = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/stolen\.yaml: is a symlink .* outside the config directory/);
    expect((await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--follow-external-links'])).code).toBe(0);
  });
});

describe('9. directories past the depth limit', { timeout: 60_000 }, () => {
  it('are reported: a warning from the daemon, an E_TOO_DEEP error (exit 1) from check', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    const deep = Array.from({ length: 33 }, (_, i) => `d${i}`).join('/');
    await w.config(`${deep}/lost.yaml`, 'port: 1\n');
    const check = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/d31\/d32: directory lies deeper than 32 levels/);
    const { logger, lines } = await memoryLogger('warn');
    await using hot = await createHotconf({ configDir: w.configDir, schemaDir: w.schemaDir, logger });
    expect(hot.get('app')).toEqual({ port: 1 });
    expect(lines.filter((l) => String(l.msg).includes('deeper than 32 levels'))).toHaveLength(1);
  });
});

describe('10. config names that cannot be published', { timeout: 60_000 }, () => {
  it('a\\b.yaml is refused at load (E_NAME) and never freezes publishing of the others', async () => {
    await using w = await layout();
    await w.schema('app');
    await w.schema('a\\b');
    await w.config('app.yaml', 'port: 1\n');
    const pub = w.tmp.file('publish');
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--no-pretty', '--batch-policy', 'per-file', '--publish-dir', pub]);
    const url = await apiUrl(d);
    await until(async () => (JSON.parse(await readFile(path.join(pub, 'app.json'), 'utf8')) as { port: number }).port === 1, 'app published');
    await writeFile(path.join(w.configDir, 'a\\b.yaml'), 'port: 5\n');
    await until(async () => (await statusOf(url)).configs.find((c) => c.name === 'a\\b')?.state === 'error', 'a\\b refused');
    expect((await statusOf(url)).configs.find((c) => c.name === 'a\\b')!.errors[0]!.code).toBe('E_NAME');
    await w.config('app.yaml', 'port: 2\n');
    await until(async () => (JSON.parse(await readFile(path.join(pub, 'app.json'), 'utf8')) as { port: number }).port === 2, 'the next version published');
    const check = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('cannot be used');
    await rm(path.join(w.configDir, 'a\\b.yaml'));
  });
});
