// RELIABILITY.md section 3, process faults: the real daemon (`node dist/cli/main.js run`, built by pretest) as a
// child process, killed with SIGKILL in the middle of a burst and restarted, hit by a storm of 1,000 SIGHUPs,
// and stopped with SIGTERM while a batch is being processed. The disk is the truth each time.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startHotconf, type Daemon } from '../e2e/cli-helpers.js';
import { sleep, tempDir, until } from '../helpers.js';
import { world, type World } from '../hotconf/fixtures.js';
import { apiUrl, rssMiB, served, servedStatus } from './fault-helpers.js';

const FILES = 20;

/** A writer that changes random files (atomically, or alternating with in-place writes), remembering the last
 *  value of each. An in-place write empties the file for a moment: a reader may catch that (invalid) state. */
function writer(w: World, files: number, { atomicOnly = false } = {}) {
  const last = new Map<number, number>();
  let seq = 0;
  return {
    last,
    get count() {
      return seq;
    },
    async write(k: number): Promise<void> {
      for (let i = 0; i < k; i++) {
        const f = Math.floor(Math.random() * files);
        const n = ++seq;
        const text = `port: 80\nn: ${n}\n`;
        await (atomicOnly || n % 2 === 0 ? w.configAtomic(`f${f}.yaml`, text) : w.config(`f${f}.yaml`, text));
        last.set(f, n);
      }
    },
  };
}

/** Every config the sidecar serves equals the last write to its file, and nothing is in error. */
async function servesTheDisk(url: string, last: ReadonlyMap<number, number>): Promise<boolean> {
  for (const [f, n] of last) {
    if ((await served(url, `f${f}`) as { n?: number } | undefined)?.n !== n) return false;
  }
  return (await servedStatus(url)).configs.every((c) => c.state === 'ok');
}

async function svcWorld(files: number): Promise<World> {
  const w = await world();
  for (let f = 0; f < files; f++) {
    await w.schema(`f${f}`);
    await w.config(`f${f}.yaml`, 'port: 80\nn: 0\n');
  }
  return w;
}

describe('kill -9', () => {
  it('3 times in the middle of a burst, then restarted: the API and the published files end equal to the disk', async () => {
    await using w = await svcWorld(FILES);
    await using out = await tempDir();
    const published = out.file('published');
    const args = ['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--publish-dir', published];
    const wr = writer(w, FILES);
    for (let f = 0; f < FILES; f++) wr.last.set(f, 0);
    let d: Daemon = startHotconf(args);
    try {
      for (let round = 1; round <= 3; round++) {
        await apiUrl(d);
        const burst = wr.write(200);
        await sleep(20 + Math.random() * 80);
        d.signal('SIGKILL');
        await d.exited;
        expect(d.child.signalCode).toBe('SIGKILL');
        await burst; // the writer goes on while the daemon is dead…
        d = startHotconf(args);
        await wr.write(50); // …and while it starts again
      }
      const url = await apiUrl(d);
      await until(() => servesTheDisk(url, wr.last), 'the API serves what is on disk', { timeoutMs: 15_000 });
      await until(async () => {
        for (const [f, n] of wr.last) {
          const text = await readFile(path.join(published, `f${f}.json`), 'utf8').catch(() => '{}');
          if ((JSON.parse(text) as { n?: number }).n !== n) return false;
        }
        return true;
      }, 'the published files equal the disk', { timeoutMs: 15_000 });
      // What the killed runs left behind (a half-written version dir, ..data_tmp) is cleaned up.
      const entries = await readdir(published);
      expect(entries).not.toContain('..data_tmp');
      expect(entries.filter((e) => e.startsWith('..v')).length).toBeLessThanOrEqual(2);
      console.log(`kill -9: 3 kills mid-burst, ${wr.count} writes over ${FILES} files, final state equal to the disk`);
      d.signal('SIGTERM');
      expect(await d.exited).toBe(0);
    } finally {
      await d[Symbol.asyncDispose]();
    }
  });
});

describe('SIGHUP storm', () => {
  it('1,000 SIGHUPs in about a second, during writes: the daemon lives, ends in one coherent state equal to the disk, memory bounded', async () => {
    await using w = await svcWorld(FILES);
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0']);
    const url = await apiUrl(d);
    const pid = d.child.pid!;
    // Warm up (a reload and a few requests) so that the baseline includes what the first reload allocates.
    process.kill(pid, 'SIGHUP');
    await d.line((l) => l.msg === 'reloaded', 'a first reload');
    const rssBefore = await rssMiB(pid);
    // Atomic saves only: every state on disk is valid, so any error logged would be hotconf's own.
    const wr = writer(w, FILES, { atomicOnly: true });
    for (let f = 0; f < FILES; f++) wr.last.set(f, 0);
    const writes = wr.write(200);
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      process.kill(pid, 'SIGHUP');
      if (i % 50 === 49) await sleep(45);
    }
    const stormMs = performance.now() - t0;
    await writes;
    await until(() => servesTheDisk(url, wr.last), 'the API serves what is on disk', { timeoutMs: 20_000 });
    // One coherent state: the list, the status and the metrics agree on the version.
    const list = (await (await fetch(`${url}/v1/configs`)).json()) as { version: number };
    const status = await servedStatus(url);
    expect(list.version).toBe(status.version);
    expect(await (await fetch(`${url}/metrics`)).text()).toContain(`hotconf_config_version ${status.version}`);
    const rssAfter = await rssMiB(pid);
    const reloads = d.lines.filter((l) => l.msg === 'reloaded').length - 1;
    console.log(
      `SIGHUP storm: 1000 signals in ${Math.round(stormMs)} ms → ${reloads} reloads; RSS ${rssBefore.toFixed(1)} → ${rssAfter.toFixed(1)} MiB`,
    );
    expect(d.child.exitCode).toBeNull();
    expect(reloads).toBeGreaterThanOrEqual(1);
    expect(reloads).toBeLessThanOrEqual(1000);
    expect(d.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
    expect(rssAfter - rssBefore).toBeLessThan(64); // MiB: a generous ceiling, the figure is reported above
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });
});

describe('SIGTERM during a batch', () => {
  it('finishes the batch in flight, commits it, logs no error and exits 0 (rounds until a signal lands mid-batch)', async () => {
    // 20 files of ~25 KB: a batch that takes long enough for a signal to land inside it.
    await using w = await world();
    const schema = { type: 'object', properties: { port: { type: 'integer' }, items: { type: 'array', items: { type: 'integer' } } } };
    const big = (round: number, f: number) => `port: ${round}\nitems:\n${Array.from({ length: 3_000 }, (_, i) => `- ${i + f}\n`).join('')}`;
    for (let f = 0; f < 20; f++) {
      await w.schema(`b${f}`, schema);
      await w.config(`b${f}.yaml`, big(0, f));
    }
    let midBatch = 0;
    let rounds = 0;
    const durations: number[] = [];
    while (midBatch === 0 && rounds < 8) {
      rounds++;
      await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0']);
      await apiUrl(d);
      for (let f = 0; f < 20; f++) await w.configAtomic(`b${f}.yaml`, big(rounds, f));
      await sleep(30 + Math.random() * 150);
      d.signal('SIGTERM');
      expect(await d.exited).toBe(0);
      const stopping = d.lines.findIndex((l) => l.msg === 'stopping: finishing the batch in flight');
      const commits = d.lines.map((l, i) => ({ l, i })).filter(({ l }) => l.msg === 'config committed');
      durations.push(...commits.map(({ l }) => Number(l.ms)));
      const stopped = d.lines.find((l) => l.msg === 'stopped');
      expect(stopped, d.stderr()).toBeDefined();
      expect(d.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
      // A commit logged after the stop began is a batch that was in flight when SIGTERM arrived, and finished.
      const after = commits.filter(({ i }) => i > stopping);
      if (after.length > 0) {
        midBatch++;
        expect(stopped!.version).toBe(after.at(-1)!.l.version);
      }
    }
    console.log(`SIGTERM: ${rounds} round(s), ${midBatch} landed mid-batch; batch durations ${durations.join(', ')} ms`);
    expect(midBatch).toBeGreaterThan(0);
  }, 90_000);
});
