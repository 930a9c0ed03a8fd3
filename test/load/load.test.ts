// Reading: real files in a temp dir, including the hostile kinds (FIFO, directory, symlink loop) and files that
// change while they are read. Parsing is specified in parse.test.ts.
import { execFile } from 'node:child_process';
import { open, rename, symlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { ReadError } from '../../src/errors.js';
import { mapLimit } from '../../src/async.js';
import { formatOf, readStable, sameIdentity, statIdentity } from '../../src/load/index.js';
import { CONFIG_EXTENSIONS } from '../../src/names.js';
import { sleep, tempDir } from '../helpers.js';

const run = promisify(execFile);

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ReadError> {
  try {
    await promise;
  } catch (err) {
    return err as ReadError;
  }
  throw new Error('expected a rejection');
}

/**
 * Runs `read` again and again for `ms` while `write` runs in bursts (five writes back to back, then `quietMs`
 * without writes, so that some reads can succeed); returns what the reads gave.
 */
async function readWhileWriting(
  read: () => Promise<string>,
  write: (i: number) => Promise<void>,
  { ms = 1_500, quietMs = 40 } = {},
) {
  let stop = false;
  const writer = (async () => {
    for (let i = 1; !stop; i++) {
      await write(i);
      if (i % 5 === 0 && quietMs > 0) await sleep(quietMs);
    }
  })();
  const outcomes: string[] = [];
  const errors: string[] = [];
  try {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      try {
        outcomes.push(await read());
      } catch (err) {
        errors.push((err as ReadError).code);
      }
    }
  } finally {
    stop = true;
    await writer;
  }
  return { outcomes, errors };
}

describe('readStable', () => {
  test('returns the whole file and the identity it had during the read', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('app.yaml', 'port: 8080\n');
    await sleep(20); // past the racy window, so this read is a single attempt
    const { bytes, identity } = await readStable(file);
    expect(bytes.toString()).toBe('port: 8080\n');
    expect(sameIdentity(identity, await statIdentity(file))).toBe(true);
    expect(identity.size).toBe(11n);
  });

  test('reads a file that was written an instant ago', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('app.yaml', 'a: 1\n');
    expect((await readStable(file)).bytes.toString()).toBe('a: 1\n');
  });

  test('a missing file is E_NOT_FOUND, named by its display path', async () => {
    await using tmp = await tempDir();
    const err = await rejection(readStable(tmp.file('nope.yaml'), { displayPath: 'config/nope.yaml' }));
    expect(err).toBeInstanceOf(ReadError);
    expect(err).toMatchObject({ code: 'E_NOT_FOUND', file: 'config/nope.yaml' });
    expect(err.message).toBe('config/nope.yaml: not found');
  });

  test('a path through a regular file (ENOTDIR) is E_NOT_FOUND', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('a.yaml', 'x: 1\n');
    expect(await rejection(readStable(`${file}/b.yaml`))).toMatchObject({ code: 'E_NOT_FOUND' });
  });

  test('a directory is E_NOT_FILE', async () => {
    await using tmp = await tempDir();
    const err = await rejection(readStable(tmp.dir, { displayPath: 'config/dir.yaml' }));
    expect(err).toMatchObject({ code: 'E_NOT_FILE', file: 'config/dir.yaml' });
    expect(err.message).toContain('directory');
  });

  test('a FIFO is E_NOT_FILE, and reading it does not hang', { timeout: 5_000 }, async () => {
    await using tmp = await tempDir();
    const fifo = tmp.file('pipe.yaml');
    await run('mkfifo', [fifo]);
    const err = await rejection(readStable(fifo));
    expect(err).toMatchObject({ code: 'E_NOT_FILE' });
    expect(err.message).toContain('FIFO');
  });

  test('a symlink loop is E_READ with the OS code in the message', async () => {
    await using tmp = await tempDir();
    await symlink('b.yaml', tmp.file('a.yaml'));
    await symlink('a.yaml', tmp.file('b.yaml'));
    const err = await rejection(readStable(tmp.file('a.yaml'), { displayPath: 'config/a.yaml' }));
    expect(err).toMatchObject({ code: 'E_READ', file: 'config/a.yaml' });
    expect(err.message).toMatch(/^config\/a\.yaml: cannot read: ELOOP \(too many symbolic links/);
    expect(err.message).not.toContain(tmp.dir);
  });

  test('a symlink to a file is followed', async () => {
    await using tmp = await tempDir();
    await tmp.write('real.yaml', 'a: 1\n');
    await symlink('real.yaml', tmp.file('link.yaml'));
    expect((await readStable(tmp.file('link.yaml'))).bytes.toString()).toBe('a: 1\n');
  });

  test('a file over maxFileBytes is E_TOO_LARGE, naming the limit and the size', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('big.yaml', 'x'.repeat(101));
    const err = await rejection(readStable(file, { maxFileBytes: 100 }));
    expect(err).toMatchObject({ code: 'E_TOO_LARGE' });
    expect(err.message).toContain('101 bytes');
    expect(err.message).toContain('limit of 100 bytes');
  });

  test('a file of exactly maxFileBytes is accepted', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('edge.yaml', 'x'.repeat(100));
    expect((await readStable(file, { maxFileBytes: 100 })).bytes.length).toBe(100);
  });

  test('the default size limit is 1 MiB', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('big.yaml', Buffer.alloc(1_048_577, 0x20));
    expect(await rejection(readStable(file))).toMatchObject({ code: 'E_TOO_LARGE' });
  });

  test('a file rewritten in place (same size, no truncation) is read whole or refused as E_UNSTABLE, never torn', async () => {
    await using tmp = await tempDir();
    const size = 256 * 1024;
    const file = await tmp.write('app.yaml', Buffer.alloc(size, 'a'));
    await using fh = await open(file, 'r+');
    const { outcomes, errors } = await readWhileWriting(
      async () => (await readStable(file)).bytes.toString(),
      async (i) => {
        await fh.write(Buffer.alloc(size, String.fromCharCode(97 + (i % 26))), 0, size, 0);
      },
    );
    for (const text of outcomes) expect(text).toBe(text.charAt(0).repeat(size));
    expect(new Set(errors)).toEqual(new Set(errors.length ? ['E_UNSTABLE'] : []));
    expect(outcomes.length).toBeGreaterThan(0);
  });

  test('a file truncated and rewritten continuously is read whole or refused as E_UNSTABLE, never torn', async () => {
    await using tmp = await tempDir();
    const versions = Array.from({ length: 20 }, (_, i) => `version: ${i}\nbody: ${'x'.repeat(1000 + i * 10_000)}\nend: ${i}\n`);
    const file = await tmp.write('app.yaml', versions[0]!);
    const { outcomes, errors } = await readWhileWriting(
      async () => (await readStable(file)).bytes.toString(),
      (i) => writeFile(file, versions[i % versions.length]!),
    );
    // A truncating writer really leaves an empty file on disk for an instant; no reader can tell that from
    // an empty config, so '' is the one state allowed besides a written version. A prefix never is.
    const allowed = new Set(['', ...versions]);
    for (const text of outcomes) expect(allowed.has(text), `torn read of ${text.length} chars`).toBe(true);
    expect(new Set(errors)).toEqual(new Set(errors.length ? ['E_UNSTABLE'] : []));
    expect(outcomes.filter((text) => text !== '').length).toBeGreaterThan(0);
  });

  test('a file replaced atomically (rename) while being read yields one whole version', async () => {
    await using tmp = await tempDir();
    const versions = Array.from({ length: 10 }, (_, i) => `version: ${i}\n${'#'.repeat(i * 20_000)}\n`);
    const file = await tmp.write('app.yaml', versions[0]!);
    const { outcomes, errors } = await readWhileWriting(
      async () => (await readStable(file)).bytes.toString(),
      async (i) => void (await tmp.writeAtomic('app.yaml', versions[i % versions.length]!)),
    );
    for (const text of outcomes) expect(versions).toContain(text);
    expect(new Set(errors)).toEqual(new Set(errors.length ? ['E_UNSTABLE'] : []));
    expect(outcomes.length).toBeGreaterThan(0);
  });

  test('a file that never stops changing ends in E_UNSTABLE after maxAttempts', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('app.yaml', 'a: 0\n');
    const displayPath = 'config/app.yaml';
    const messages = new Set<string>();
    const { errors } = await readWhileWriting(
      () => readStable(file, { maxAttempts: 2, displayPath }).then(
        (read) => read.bytes.toString(),
        (err: ReadError) => {
          messages.add(err.message);
          throw err;
        },
      ),
      (i) => writeFile(file, `a: ${i}\n`),
      { ms: 500, quietMs: 0 },
    );
    expect(errors).toContain('E_UNSTABLE');
    expect([...messages]).toEqual(['config/app.yaml: kept changing while being read (2 attempts)']);
  });

  test('an aborted signal stops the read with its reason', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('app.yaml', 'a: 1\n');
    const controller = new AbortController();
    controller.abort(new Error('shutting down'));
    await expect(readStable(file, { signal: controller.signal })).rejects.toThrow('shutting down');
  });

  test('invalid options are refused with E_OPTIONS', async () => {
    await expect(readStable('x', { maxFileBytes: 0 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(readStable('x', { maxAttempts: 1.5 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});

describe('statIdentity', () => {
  test('changes on an in-place write, and on an atomic rename even with the same content and size', async () => {
    await using tmp = await tempDir();
    const file = await tmp.write('app.yaml', 'a: 1\n');
    const first = await statIdentity(file);
    await writeFile(file, 'a: 2\n');
    const inPlace = await statIdentity(file);
    expect(sameIdentity(first, inPlace)).toBe(false);
    expect(inPlace?.ino).toBe(first?.ino);
    await tmp.writeAtomic('app.yaml', 'a: 2\n');
    const renamed = await statIdentity(file);
    expect(sameIdentity(inPlace, renamed)).toBe(false);
    expect(renamed?.ino).not.toBe(inPlace?.ino);
    expect(sameIdentity(renamed, await statIdentity(file))).toBe(true);
  });

  test('is undefined for a missing path and reports isFile for what exists', async () => {
    await using tmp = await tempDir();
    expect(await statIdentity(tmp.file('missing.yaml'))).toBeUndefined();
    expect((await statIdentity(tmp.dir))?.isFile).toBe(false);
    expect((await statIdentity(await tmp.write('a.yaml', '')))?.isFile).toBe(true);
  });

  test('follows a swapped symlink, as Kubernetes swaps ..data', async () => {
    await using tmp = await tempDir();
    await tmp.write('v1/app.yaml', 'a: 1\n');
    await tmp.write('v2/app.yaml', 'a: 2\n');
    await symlink('v1', tmp.file('..data'));
    const before = await statIdentity(tmp.file('..data/app.yaml'));
    await symlink('v2', tmp.file('..data_tmp'));
    await rename(tmp.file('..data_tmp'), tmp.file('..data'));
    expect(sameIdentity(before, await statIdentity(tmp.file('..data/app.yaml')))).toBe(false);
  });

  test('a symlink loop throws E_READ naming ELOOP', async () => {
    await using tmp = await tempDir();
    await symlink('b', tmp.file('a'));
    await symlink('a', tmp.file('b'));
    const err = await rejection(statIdentity(tmp.file('a')));
    expect(err).toMatchObject({ code: 'E_READ' });
    expect(err.message).toContain('ELOOP');
  });

  test('sameIdentity treats two undefined as equal and one undefined as different', async () => {
    await using tmp = await tempDir();
    const id = await statIdentity(await tmp.write('a.yaml', 'x'));
    expect(sameIdentity(undefined, undefined)).toBe(true);
    expect(sameIdentity(id, undefined)).toBe(false);
    expect(sameIdentity(undefined, id)).toBe(false);
  });
});

describe('formats', () => {
  test('the format comes from the extension: .yaml and .yml are YAML, .json is JSON, anything else none', () => {
    expect(formatOf('config/app.yaml')).toBe('yaml');
    expect(formatOf('db/primary.yml')).toBe('yaml');
    expect(formatOf('app.json')).toBe('json');
    expect(formatOf('app.toml')).toBeUndefined();
    expect(formatOf('app.yaml.bak')).toBeUndefined();
    expect(formatOf('x.constructor')).toBeUndefined();
    expect(Object.keys(CONFIG_EXTENSIONS).sort()).toEqual(['.json', '.yaml', '.yml']);
  });
});

describe('mapLimit', () => {
  test('never has more than `limit` calls in flight, and returns results in input order', async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await mapLimit([50, 10, 30, 0, 20, 5, 40, 15], 3, async (ms, index) => {
      peak = Math.max(peak, ++inFlight);
      await sleep(ms);
      inFlight--;
      return `${index}:${ms}`;
    });
    expect(peak).toBe(3);
    expect(results).toEqual(['0:50', '1:10', '2:30', '3:0', '4:20', '5:5', '6:40', '7:15']);
  });

  test('rejects with the first error only after the calls already started have settled, and starts no more', async () => {
    const settled: number[] = [];
    const started: number[] = [];
    const outcome = mapLimit([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      if (i === 1) throw new Error('first');
      await sleep(30);
      settled.push(i);
      if (i === 0) throw new Error('second');
      return i;
    });
    await expect(outcome).rejects.toThrow('first');
    expect(settled).toEqual([0]);
    expect(started).toEqual([0, 1]);
  });

  test('accepts any iterable and an empty one', async () => {
    expect(await mapLimit(new Set(['a', 'b']), 4, (s) => Promise.resolve(s.toUpperCase()))).toEqual(['A', 'B']);
    expect(await mapLimit([], 4, () => Promise.resolve(1))).toEqual([]);
    await expect(mapLimit([1], 0, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});
