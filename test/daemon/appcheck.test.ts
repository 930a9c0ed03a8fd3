// validate.command as a check hook, with real processes: the candidate laid out as the source (names and exact
// bytes) in a private directory that is removed after, argv with {dir}, the notify environment, and a deadline that
// kills the whole process group.
import { access, readdir } from 'node:fs/promises';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { commandCheck } from '../../src/daemon/appcheck.js';
import type { Candidate, CandidateEntry } from '../../src/index.js';
import { tempDir, until } from '../helpers.js';

const log = pino({ level: 'silent' });

function candidate(files: Record<string, string>): Candidate {
  const configs = new Map<string, CandidateEntry>();
  for (const [file, text] of Object.entries(files)) {
    const name = file.replace(/\.(ya?ml|json)$/, '');
    configs.set(name, { name, value: {}, hash: 'h', path: `/src/${file}`, secrets: [], source: { file, text } });
  }
  return { configs, changed: [...configs.keys()], removed: [], get: (n) => configs.get(n)?.value };
}

test('the command sees the candidate under its source names with the exact bytes, in a 0700 directory removed after', async () => {
  await using runtime = await tempDir();
  const text = '# comment\nkey: "v"\r\n\ttabbed: ü\n';
  const check = commandCheck(
    {
      command: ['sh', '-c', 'printf %s "$(stat -c %a "$1")" >&2; cmp -s "$1/prometheus.yml" "$2" && test -f "$1/db/primary.yaml" && exit 3', 'sh', '{dir}', runtime.file('expected')],
    },
    log,
    { PATH: process.env.PATH, RUNTIME_DIRECTORY: runtime.dir },
  );
  await runtime.write('expected', text);
  const said = await check(candidate({ 'prometheus.yml': text, 'db/primary.yaml': 'a: 1\n' }));
  // exit 3 only when the bytes compare equal and the nested file is there
  expect(said).toEqual(['sh exited with code 3: 700']);
  expect((await readdir(runtime.dir)).filter((e) => e.startsWith('hotconf-check-'))).toEqual([]);
});

test('exit 0 accepts; the output names files relative to the candidate directory', async () => {
  await using runtime = await tempDir();
  const env = { PATH: process.env.PATH, RUNTIME_DIRECTORY: runtime.dir };
  expect(await commandCheck({ command: ['test', '-f', '{dir}/app.yaml'] }, log, env)(candidate({ 'app.yaml': 'a: 1\n' }))).toBeUndefined();
  const said = await commandCheck({ command: ['sh', '-c', 'echo "checking $1/app.yaml: FAILED"; exit 1', 'sh', '{dir}'] }, log, env)(candidate({ 'app.yaml': 'a: 1\n' }));
  expect(said).toEqual(['sh exited with code 1: checking app.yaml: FAILED\n']);
});

test('credentials are stripped from its environment, as for notify commands', async () => {
  const env = { PATH: process.env.PATH, HOTCONF_HTTP_TOKEN: 'tok-0123456789abcdef', NOTIFY_SOCKET: '/run/x', KEEP_ME: 'yes' };
  const said = await commandCheck({ command: ['sh', '-c', 'env; exit 1'] }, log, env)(candidate({ 'app.yaml': 'a: 1\n' }));
  expect(said![0]).toContain('KEEP_ME=yes');
  expect(said![0]).not.toMatch(/HOTCONF_HTTP_TOKEN|tok-0123|NOTIFY_SOCKET/);
});

test('past timeoutMs the whole process group is killed and the version refused', async () => {
  await using tmp = await tempDir();
  const pidFile = tmp.file('grandchild.pid');
  const check = commandCheck({ command: ['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`], timeoutMs: 300 }, log, { PATH: process.env.PATH });
  const t0 = Date.now();
  const said = await check(candidate({ 'app.yaml': 'a: 1\n' }));
  expect(said![0]).toMatch(/^sh did not finish within 300 ms \(validate\.timeoutMs\): killed/);
  expect(Date.now() - t0).toBeLessThan(30_000);
  const { readFile } = await import('node:fs/promises');
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  await until(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 'the grandchild sleep is gone');
});

test('a command that cannot be run refuses with why', async () => {
  const said = await commandCheck({ command: ['/nonexistent/promtool', 'check'] }, log, { PATH: process.env.PATH })(candidate({ 'app.yaml': 'a: 1\n' }));
  expect(said![0]).toMatch(/^\/nonexistent\/promtool could not run: spawn \/nonexistent\/promtool ENOENT/);
  await expect(access('/nonexistent')).rejects.toThrow();
});

test('settings are checked', () => {
  expect(() => commandCheck({ command: [] }, log)).toThrow(/validate\.command must be a non-empty array/);
  expect(() => commandCheck({ command: ['x'], timeoutMs: 0 }, log)).toThrow(/validate\.timeoutMs must be a number > 0/);
});
