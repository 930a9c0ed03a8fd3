// Log priorities as journald reads them: when stdout is the stream systemd connected to journald ($JOURNAL_STREAM
// holds its device:inode), every line starts with `<N>` (SyslogLevelPrefix=). The output here is a real file whose
// device:inode the test puts in JOURNAL_STREAM, exactly as systemd does for its stream socket; the bytes are read back.
import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { tempDir } from '../helpers.js';
import { BIN, childEnv, ROOT } from '../e2e/cli-helpers.js';

/** Runs node with `args`, stdout into a fresh file; JOURNAL_STREAM names that file (or `journal` when given). */
async function runToFile(args: string[], journal?: (own: string) => string): Promise<{ code: number | null; out: string }> {
  await using tmp = await tempDir();
  const file = tmp.file('stdout');
  const fh = await open(file, 'w');
  const st = await fh.stat({ bigint: true });
  const own = `${st.dev}:${st.ino}`;
  const child = spawn(process.execPath, args, { stdio: ['ignore', fh.fd, 'pipe'], env: childEnv({ JOURNAL_STREAM: journal ? journal(own) : own }) });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  await fh.close();
  if (stderr !== '') process.stderr.write(stderr);
  return { code, out: await readFile(file, 'utf8') };
}

const LOG_MODULE = pathToFileURL(path.join(ROOT, 'dist', 'daemon', 'log.js')).href;
const everyLevel = (pretty: boolean) => [
  '--input-type=module',
  '-e',
  `const { daemonLogger } = await import(${JSON.stringify(LOG_MODULE)});
const log = daemonLogger({ log: { level: 'trace', pretty: ${pretty} } });
log.trace('t'); log.debug('d'); log.info('i'); log.warn('w');
log.error({ errors: [{ message: 'a.yaml:1:2: first' }, { message: 'b.yaml:3:4: second' }] }, 'e'); log.fatal('f');`,
];

describe('journald priorities', () => {
  it('each JSON line starts with its syslog priority: trace/debug <7>, info <6>, warn <4>, error <3>, fatal <2>', async () => {
    const { code, out } = await runToFile(everyLevel(false));
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines.map((l) => /^<(\d)>\{"level":(\d+),/.exec(l)?.slice(1, 3))).toEqual([
      ['7', '10'],
      ['7', '20'],
      ['6', '30'],
      ['4', '40'],
      ['3', '50'],
      ['2', '60'],
    ]);
    // the rest of each line is the JSON object, untouched
    expect(JSON.parse(lines[4]!.slice(3))).toMatchObject({ level: 50, msg: 'e' });
  });

  it('pretty lines carry the prefix on every line of an event, details included', async () => {
    const { out } = await runToFile(everyLevel(true));
    const error = out.split('\n').filter((l) => l.startsWith('<3>'));
    expect(error).toHaveLength(3);
    expect(error[0]).toMatch(/^<3>\[[\d:.]+\] ERROR: e$/);
    expect(error.slice(1)).toEqual(['<3>    a.yaml:1:2: first', '<3>    b.yaml:3:4: second']);
  });

  it('no prefix when stdout is not the journal stream (JOURNAL_STREAM names another inode)', async () => {
    const { out } = await runToFile(everyLevel(false), (own) => `${own.split(':')[0]}:1`);
    expect(out.split('\n')[0]).toMatch(/^\{"level":10,/);
    expect(out).not.toMatch(/^</m);
  });

  it('hotconf run under the journal: a refused config is logged at <3>, the refusal to start at <2>', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: x\n');
    const { code, out } = await runToFile([BIN, 'run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(code).toBe(1);
    const lines = out.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('<3>') && l.includes('svc.yaml:1:7: /port: must be integer'))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^<2>\{"level":60,.*initial config is invalid/);
    expect(lines[0]).toMatch(/^<6>\{"level":30,.*hotconf starting/);
  });
});
