// The real CLI as a child process: check, get, usage errors, and `run` as an SRE drives it.
import { readFile, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { world, type World } from '../hotconf/fixtures.js';
import { tempDir, until } from '../helpers.js';
import { BIN, hotconf, ROOT, runCommand, startHotconf } from './cli-helpers.js';

const dirs = (w: World) => ['--config-dir', w.configDir, '--schema-dir', w.schemaDir];

async function goodWorld() {
  const w = await world();
  await w.schema('svc');
  await w.schema('db/primary');
  await w.config('svc.yaml', 'port: 80\n');
  await w.config('db/primary.yaml', 'port: 5432\npassword: s3cret-pw\n');
  return w;
}

describe('hotconf check', () => {
  it('exits 0 on the embedded default config', async () => {
    const r = await hotconf(['check']);
    expect(r.stdout).toMatch(/3 config\(s\) checked, 0 invalid/);
    expect(r.code).toBe(0);
  });

  it('exits 1 and prints every error as file:line:col: /pointer: message', async () => {
    await using w = await goodWorld();
    await w.config('svc.yaml', 'port: 70000\nextra: 1\n');
    await w.config('db/primary.yaml', 'port: [\n');
    const r = await hotconf(['check', ...dirs(w)]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/config\/svc\.yaml:1:7: \/port: must be <= 65535$/));
    expect(lines).toContainEqual(expect.stringMatching(/config\/svc\.yaml:2:1: \/extra: is not allowed here/));
    expect(lines).toContainEqual(expect.stringMatching(/config\/db\/primary\.yaml:\d+:\d+: /));
    expect(lines.at(-1)).toBe('2 config(s) checked, 2 invalid');
  });

  it('--json gives a machine-readable report without secret values', async () => {
    await using w = await goodWorld();
    const r = await hotconf(['check', '--json', ...dirs(w)]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; configs: Array<{ name: string; ok: boolean }> };
    expect(report.ok).toBe(true);
    expect(report.configs.map((c) => c.name)).toEqual(['db/primary', 'svc']);
    expect(r.stdout).not.toContain('s3cret-pw');
  });

  it('checks only the files named', async () => {
    await using w = await goodWorld();
    await w.config('svc.yaml', 'port: nope\n');
    const r = await hotconf(['check', ...dirs(w), path.join(w.configDir, 'db/primary.yaml')]);
    expect(r.stdout).toMatch(/1 config\(s\) checked, 0 invalid/);
    expect(r.code).toBe(0);
  });

  it('reads its directories from hotconf.yaml, relative to that file', async () => {
    await using w = await goodWorld();
    await w.tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: schemas\n');
    const r = await hotconf(['check', '--config', w.tmp.file('hotconf.yaml')], { cwd: '/' });
    expect(r.stdout).toMatch(/2 config\(s\) checked, 0 invalid/);
    expect(r.code).toBe(0);
  });

  it('exits 3 with a precise message when hotconf.yaml itself is invalid', async () => {
    await using w = await goodWorld();
    await w.tmp.write('hotconf.yaml', 'configDir: config\ndebounceMs: -5\n');
    const r = await hotconf(['check', '--config', w.tmp.file('hotconf.yaml')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/hotconf\.yaml:2:13: \/debounceMs: must be >= 0/);
  });

  it('exits 3 when the config directory does not exist', async () => {
    const r = await hotconf(['check', '--config-dir', '/nonexistent/hotconf', '--schema-dir', '/tmp']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not a directory: \/nonexistent\/hotconf/);
  });

  it('without flags: ./hotconf.yaml, else ./config + ./schemas of the current directory, else exit 2 naming both', async () => {
    await using w = await goodWorld();
    await w.config('svc.yaml', 'port: 70000\n');
    const fromDirs = await hotconf(['check'], { cwd: w.tmp.dir });
    expect(fromDirs.stdout.split('\n')[0]).toBe('checking ./config against the schemas in ./schemas');
    expect(fromDirs.stdout).toMatch(/^2 config\(s\) checked, 1 invalid$/m);
    expect(fromDirs.code).toBe(1);
    expect((await hotconf(['get', 'db/primary.port'], { cwd: w.tmp.dir })).stdout).toBe('5432\n');

    await w.tmp.write('good/svc.yaml', 'port: 80\n');
    await w.tmp.write('hotconf.yaml', 'configDir: good\nschemaDir: schemas\n');
    const fromFile = await hotconf(['check'], { cwd: w.tmp.dir });
    expect(fromFile.stdout.split('\n')[0]).toBe('checking ./good against the schemas in ./schemas (from ./hotconf.yaml)');
    expect(fromFile.stdout).toMatch(/^1 config\(s\) checked, 0 invalid$/m);
    expect(fromFile.code).toBe(0);

    await using empty = await tempDir();
    for (const args of [['check'], ['get', 'app'], ['run']]) {
      const none = await hotconf(args, { cwd: empty.dir });
      expect(none.code, args.join(' ')).toBe(2);
      expect(none.stderr).toContain(`no configs to use in ${empty.dir}: looked for ./hotconf.yaml, then the directories ./config and ./schemas`);
    }
  });

  it('honours HOTCONF_* environment variables, below flags', async () => {
    await using w = await goodWorld();
    await using other = await tempDir();
    const env = { HOTCONF_CONFIG_DIR: other.dir, HOTCONF_SCHEMA_DIR: w.schemaDir };
    expect((await hotconf(['check'], { env })).stdout).toMatch(/0 config\(s\) checked/);
    expect((await hotconf(['check', '--config-dir', w.configDir], { env })).stdout).toMatch(/2 config\(s\) checked/);
    const bad = await hotconf(['check'], { env: { HOTCONF_DEBOUNCE_MS: 'soon' } });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/\$HOTCONF_DEBOUNCE_MS: must be a whole number/);
  });
});

describe('hotconf get', () => {
  it('prints a value, a dotted path, and redacts secrets unless asked', async () => {
    await using w = await goodWorld();
    expect((await hotconf(['get', 'svc.port', ...dirs(w)])).stdout).toBe('80\n');
    const all = await hotconf(['get', 'db/primary', '--json', ...dirs(w)]);
    expect(JSON.parse(all.stdout)).toEqual({ port: 5432, password: '[REDACTED]' });
    expect((await hotconf(['get', 'db/primary.password', '--show-secrets', ...dirs(w)])).stdout).toBe('s3cret-pw\n');
  });

  it('exits 1 for an unknown name or an invalid config', async () => {
    await using w = await goodWorld();
    const r = await hotconf(['get', 'nope', ...dirs(w)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no config named 'nope'/);
    await w.config('svc.yaml', 'port: x\n');
    const bad = await hotconf(['get', 'svc', ...dirs(w)]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/svc\.yaml:1:7: \/port: must be integer/);
  });
});

describe('usage', () => {
  it('--version and --help exit 0', async () => {
    const v = await hotconf(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    for (const cmd of [[], ['run'], ['check'], ['get'], ['watch']]) {
      const h = await hotconf([...cmd, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(/Usage: hotconf/);
    }
  });

  it('`hotconf --help | head -1` exits 0 without an EPIPE stack, every time', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await runCommand('/bin/sh', ['-c', `{ "${process.execPath}" "${BIN}" --help; echo "hotconf exited $?" >&2; } | head -1`]);
      expect(r.stdout).toBe('Usage: hotconf [options] [command]\n');
      expect(r.stderr).toBe('hotconf exited 0\n');
    }
  });

  it('unknown flags, unknown commands and bad values exit 2 with a usage message', async () => {
    for (const args of [['--bogus'], ['run', '--bogus'], ['frobnicate'], ['run', '--debounce-ms', 'abc'], ['run', '--batch-policy', 'most'], ['get']]) {
      const r = await hotconf(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/error: /);
    }
  });
});

describe('hotconf run', () => {
  it('logs each committed version and each refusal with file:line:col, keeping the last good config', async () => {
    await using w = await goodWorld();
    await using d = startHotconf(['run', ...dirs(w), '--debounce-ms', '10']);
    await d.line((l) => l.msg === 'hotconf running', 'running');
    await w.configAtomic('svc.yaml', 'port: 70000\n');
    const refused = await d.line((l) => l.msg === 'batch rejected; last good config stays live', 'refusal');
    expect(JSON.stringify(refused)).toContain('svc.yaml:1:7: /port: must be <= 65535');
    await w.configAtomic('svc.yaml', 'port: 81\n');
    const committed = await d.line((l) => l.msg === 'config committed' && l.version === 2, 'version 2');
    expect(committed.changed).toEqual(['svc']);
    expect(d.lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain('s3cret-pw');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('exits 1 without serving when the initial config is invalid', async () => {
    await using w = await goodWorld();
    await w.config('svc.yaml', 'port: x\n');
    await using d = startHotconf(['run', ...dirs(w)]);
    expect(await d.exited).toBe(1);
    // One event says it, at error level, with the problem's file:line:col once; then the fatal line.
    const refused = d.lines.filter((l) => JSON.stringify(l).includes('svc.yaml:1:7: /port: must be integer'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: 50, msg: 'invalid config refused; last good value stays live' });
    expect(d.lines.at(-1)).toMatchObject({ level: 60, errors: 1 });
  });

  it('SIGHUP rescans and picks up a change no watcher event announced', async () => {
    await using w = await goodWorld();
    await using outside = await tempDir();
    await outside.write('v2.yaml', 'port: 82\n');
    await outside.write('v1.yaml', 'port: 80\n');
    await symlink(outside.file('v1.yaml'), outside.file('link.yaml'));
    await rename(w.tmp.file('config/svc.yaml'), w.tmp.file('old.yaml'));
    await symlink(outside.file('link.yaml'), w.tmp.file('config/svc.yaml'));
    await w.tmp.write('hotconf.yaml', `configDir: config\nschemaDir: schemas\nverifyIntervalMs: 0\nfollowExternalLinks: true\n`); // the link points outside on purpose
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')]);
    await d.line((l) => l.msg === 'hotconf running', 'running');
    // re-point the outer link: nothing hotconf watches changes
    await symlink(outside.file('v2.yaml'), outside.file('link.tmp'));
    await rename(outside.file('link.tmp'), outside.file('link.yaml'));
    d.signal('SIGHUP');
    await d.line((l) => l.msg === 'config committed' && (l.changed as string[]).includes('svc'), 'svc committed after SIGHUP');
    await d.line((l) => l.msg === 'reloaded', 'reloaded');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('SIGTERM during a burst of writes exits 0 with no error logged', async () => {
    await using w = await goodWorld();
    await using d = startHotconf(['run', ...dirs(w), '--debounce-ms', '0']);
    await d.line((l) => l.msg === 'hotconf running', 'running');
    let writing = true;
    const burst = (async () => {
      for (let i = 1; writing; i++) await w.configAtomic('svc.yaml', `port: ${(i % 60000) + 1}\n`);
    })();
    await d.line((l) => l.msg === 'config committed' && (l.version as number) >= 3, 'commits during the burst');
    d.signal('SIGTERM');
    const code = await d.exited;
    writing = false;
    await burst;
    expect(code).toBe(0);
    expect(d.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(d.lines.at(-1)?.msg).toBe('stopped');
  });

  it('re-applies hot settings from hotconf.yaml and refuses to half-apply one that needs a restart', async () => {
    await using w = await goodWorld();
    await w.tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: schemas\nlog:\n  level: info\n');
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')]);
    await d.line((l) => l.msg === 'hotconf running', 'running');
    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: config\nschemaDir: schemas\nlog:\n  level: debug\nbatchPolicy: per-file\n');
    const applied = await d.line((l) => l.msg === 'settings applied', 'settings applied');
    expect(applied.changed).toEqual(['batchPolicy', 'log.level']);
    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: elsewhere\nschemaDir: schemas\nlog:\n  level: warn\n');
    const refused = await d.line((l) => l.msg === 'settings change needs a restart; nothing of it was applied', 'restart needed');
    expect(refused.restart).toEqual(['configDir']);
    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: config\ndebounceMs: -1\n');
    await d.line((l) => typeof l.msg === 'string' && l.msg.includes('hotconf.yaml:2:13: /debounceMs: must be >= 0'), 'invalid settings reported');
    // the config pipeline still runs, under per-file policy, at debug level
    await writeFile(path.join(w.configDir, 'svc.yaml'), 'port: 99\n');
    await d.line((l) => l.msg === 'config committed' && (l.changed as string[]).includes('svc'), 'commit after all that');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('--pretty prints human-readable lines instead of JSON', async () => {
    await using w = await goodWorld();
    await using d = startHotconf(['run', '--pretty', ...dirs(w)]);
    await d.line((l) => typeof l.raw === 'string' && l.raw.includes('hotconf running'), 'a pretty "running" line');
    expect(d.lines.every((l) => typeof l.raw === 'string')).toBe(true);
    // One event, one line: a refusal is its line plus one indented line per problem; a commit is one line.
    const before = d.lines.length;
    await w.configAtomic('svc.yaml', 'port: 70000\n');
    await d.line((l) => String(l.raw).includes('svc.yaml:1:7: /port: must be <= 65535'), 'the problem, indented');
    await w.configAtomic('svc.yaml', 'port: 81\n');
    await d.line((l) => String(l.raw).includes('config committed version=2'), 'the commit');
    const raw = d.lines.slice(before).map((l) => String(l.raw));
    expect(raw).toHaveLength(4);
    expect(raw[0]).toMatch(/^\[[\d:.]+\] ERROR: batch rejected; last good config stays live held=svc policy=all-or-nothing version=1$/);
    expect(raw[1]).toMatch(/^ {4}\S*\/config\/svc\.yaml:1:7: \/port: must be <= 65535$/);
    expect(raw[2]).toMatch(/^\[[\d:.]+\] INFO: config committed version=2 changed=svc ms=[\d.]+ latencyMs=[\d.]+$/);
    expect(raw[3]).toMatch(/^\[[\d:.]+\] INFO: config valid again names=svc version=2$/);
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('a SIGHUP then SIGTERM that arrive during start-up are acted on once it runs, not fatal', async () => {
    await using w = await goodWorld();
    // enough files that the initial load takes a while: the signals land in the middle of it
    for (let i = 0; i < 1500; i++) await w.config(`bulk/f${i}.yaml`, `n: ${i}\n`);
    await w.tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: schemas\nrequireSchema: false\n');
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')]);
    await d.line((l) => l.msg === 'hotconf starting', 'start-up begun', 10_000);
    d.signal('SIGHUP');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(d.lines.some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('npm start’s command serves the embedded default config', async () => {
    const start = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    expect(start).toBe('node dist/cli/main.js run --config hotconf.yaml');
    await using d = startHotconf(['run', '--config', 'hotconf.yaml']);
    const ready = await d.line((l) => l.msg === 'hotconf ready', 'ready');
    expect(ready).toMatchObject({ configs: 3, errors: 0 });
    d.signal('SIGINT');
    expect(await d.exited).toBe(0);
  });
});

describe('hotconf watch', () => {
  it('streams committed changes as NDJSON until interrupted', async () => {
    await using w = await goodWorld();
    await using d = startHotconf(['watch', '--values', ...dirs(w)]);
    const first = await d.line((l) => l.type === 'snapshot', 'snapshot line');
    expect(first.version).toBe(1);
    await w.configAtomic('svc.yaml', 'port: 90\n');
    await until(() => d.lines.find((l) => l.type === 'change'), 'change line');
    const change = d.lines.find((l) => l.type === 'change')!;
    expect(change).toMatchObject({ version: 2, changed: ['svc'], removed: [], values: { svc: { port: 90 } } });
    await w.configAtomic('db/primary.yaml', 'port: 5433\npassword: s3cret-pw\n');
    await until(() => d.lines.filter((l) => l.type === 'change').length === 2, 'second change');
    expect(d.lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain('s3cret-pw');
    d.signal('SIGINT');
    expect(await d.exited).toBe(0);
  });
});
