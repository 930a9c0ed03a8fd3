// The README's "Fleet (etcd)" walkthrough, run as written: every command of its shell block in order (with the
// test's own etcd, temp directory and free ports substituted), each printed output compared with the lines the
// README shows under it (`…` in an expected line stands for anything). Long-running commands (etcd, the two
// sidecars) run in the background.
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { tempDir, until } from '../helpers.js';
import { HAVE_ETCD, startEtcd } from '../etcd/etcd-server.js';
import { hotconf, ROOT, startHotconf, type Daemon } from './cli-helpers.js';

it.skipIf(!HAVE_ETCD)('the Fleet (etcd) walkthrough in README.md runs as written', async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Fleet (etcd)'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  expect(block).toBeDefined();
  await using etcd = await startEtcd();
  await using tmp = await tempDir();
  const sidecars = new Map<string, { daemon: Daemon; url: string }>();
  const sub = (s: string) =>
    s.replaceAll('http://127.0.0.1:2379', etcd.url).replaceAll('/tmp/fleet-config', tmp.file('fleet-config')).replaceAll('/tmp/fleet-cache', tmp.file('fleet-cache'));
  // An expected line: `…` stands for anything (a revision, a date, an author), the rest is exact.
  const matcher = (e: string) => new RegExp(`^${e.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  const lines = block!.split('\n');
  let ran = 0;
  try {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      // What the README says this command prints: the `#   ` lines under it.
      const expected: string[] = [];
      while (lines[i + 1]?.startsWith('#   ')) expected.push(lines[++i]!.slice(4));
      const [command, comment] = line.split(/\s+#\s+/);
      // Words as the shell splits them (double quotes group).
      const words = [...sub(command!).matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
      ran++;
      if (words[0] === 'rm' || words[0] === 'etcd' || words[0] === 'alias') continue; // the test's own etcd and temp dir
      if (words[0] === 'cp') {
        await cp(path.join(ROOT, words[2]!), words[3]!, { recursive: true });
      } else if (words[0] === 'sed') {
        const [, from, to, file] = /^sed -i 's\/(.*)\/(.*)\/' (\S+)$/.exec(sub(command!))!;
        await writeFile(file!, (await readFile(file!, 'utf8')).replace(from!, to!));
      } else if (words[0] === 'hotconf' && words[1] === 'run') {
        const at = words.indexOf('--http');
        const name = words[at + 1]!;
        words[at + 1] = '127.0.0.1:0';
        const daemon = startHotconf([...words.slice(1), '--no-pretty']);
        const listening = await daemon.line((l) => l.msg === 'http listening', `sidecar ${name}`, 20_000);
        sidecars.set(name, { daemon, url: String(listening.url) });
      } else if (words[0] === 'hotconf') {
        const result = await hotconf(words.slice(1));
        const printed = `${result.stdout}${result.stderr}`.trim().split('\n');
        const shown = printed.map((p) => p.replaceAll(tmp.dir, '/tmp'));
        for (const e of expected) expect(shown.some((p) => matcher(e).test(p)), `${words.slice(0, 2).join(' ')} prints ${JSON.stringify(e)}; it printed:\n${shown.join('\n')}`).toBe(true);
      } else if (words[0] === 'curl') {
        const [, host, route] = /^(\d+\.\d+\.\d+\.\d+:\d+)(\/.*)$/.exec(words[2]!)!;
        const base = sidecars.get(host!)!.url;
        // The comment shows the answer, `…` standing for anything (a leading `…`: the answer starts elsewhere).
        const shape = comment!.startsWith('…') ? comment! : `^${comment!}`;
        const re = new RegExp(shape.split('…').map((p) => p.replace(/[.*+?${}()|[\]\\]/g, '\\$&')).join('.*'));
        await until(async () => re.test(await (await fetch(`${base}${route}`)).text()), `${words.join(' ')} to show ${comment!}`, { timeoutMs: 15_000 });
      } else {
        throw new Error(`the README test does not know how to run: ${line}`);
      }
    }
  } finally {
    for (const { daemon } of sidecars.values()) await daemon[Symbol.asyncDispose]();
  }
  expect(ran).toBeGreaterThan(10);
  expect(sidecars.size).toBe(2);
});
