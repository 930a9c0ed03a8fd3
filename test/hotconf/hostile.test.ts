// DESIGN.md point 9: hostile input is refused with a clear error and nothing else breaks.
import { execFile } from 'node:child_process';
import { rm, symlink, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers.js';
import { start, world, type World } from './fixtures.js';

const run = promisify(execFile);

const bomb = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  'port: 1',
].join('\n');

/** Starts with a good svc config, applies `attack`, and returns the status error once it is refused. */
async function refused(w: World, attack: (w: World) => Promise<unknown>) {
  await w.schema('svc', { type: 'object', properties: { port: { type: 'integer' } } });
  await w.config('svc.yaml', 'port: 80\n');
  const hot = await start(w, { maxFileBytes: 4096 });
  try {
    await attack(w);
    const st = await until(() => hot.status().configs.find((c) => c.name === 'svc' && c.state === 'error'), 'refusal');
    expect(hot.get('svc')).toEqual({ port: 80 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    return st.error!;
  } finally {
    await hot.close();
  }
}

describe('hostile input (point 9)', () => {
  it('a file over maxFileBytes is refused', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', `port: 1\npad: "${'x'.repeat(10_000)}"\n`));
    expect(e.code).toBe('E_TOO_LARGE');
  });

  it('a YAML alias bomb is refused quickly', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', bomb));
    expect(e.code).toBe('E_ALIAS_LIMIT');
  });

  it('__proto__ keys are refused and pollute nothing', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', 'port: 1\n__proto__:\n  polluted: yes\n'));
    expect(e).toMatchObject({ code: 'E_FORBIDDEN_KEY', line: 2, col: 1 });
  });

  it('constructor.prototype keys are refused', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', 'port: 1\nconstructor:\n  prototype:\n    polluted: 1\n'));
    expect(e.code).toBe('E_FORBIDDEN_KEY');
  });

  it('duplicate keys are refused', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', 'port: 1\nport: 2\n'));
    expect(e).toMatchObject({ code: 'E_DUPLICATE_KEY', line: 2 });
  });

  it('excessive depth is refused without a crash', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', `port: 1\ndeep: ${'['.repeat(1500)}${']'.repeat(1500)}\n`));
    expect(e.code).toBe('E_DEPTH');
  });

  it('custom tags are refused', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', 'port: !!js/function "function(){}"\n'));
    expect(e.code).toBe('E_TAG');
  });

  it('invalid UTF-8 is refused with its position', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', Buffer.from([...Buffer.from('port: 1\nx: "'), 0xc3, 0x28, 0x22, 0x0a]) as unknown as string));
    expect(e).toMatchObject({ code: 'E_ENCODING', line: 2 });
  });

  it('binary garbage is refused', async () => {
    await using w = await world();
    const e = await refused(w, (w) => w.configAtomic('svc.yaml', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00]) as unknown as string));
    expect(e.code).toBe('E_ENCODING');
  });

  it('a FIFO named like a config is refused without blocking', async () => {
    await using w = await world();
    const e = await refused(w, async (w) => {
      await unlink(path.join(w.configDir, 'svc.yaml'));
      await run('mkfifo', [path.join(w.configDir, 'svc.yaml')]);
    });
    expect(e.code).toBe('E_NOT_FILE');
  });

  it('a directory put in place of a config is refused', async () => {
    await using w = await world();
    const e = await refused(w, async (w) => {
      await unlink(path.join(w.configDir, 'svc.yaml'));
      await mkdir(path.join(w.configDir, 'svc.yaml'));
    });
    expect(e.code).toBe('E_NOT_FILE');
  });

  it('a symlink loop named like a config is refused', async () => {
    await using w = await world();
    const e = await refused(w, async (w) => {
      await rm(path.join(w.configDir, 'svc.yaml'));
      await symlink('loop2.yaml.lnk', path.join(w.configDir, 'svc.yaml'));
      await symlink('svc.yaml', path.join(w.configDir, 'loop2.yaml.lnk'));
    });
    expect(e.code).toBe('E_READ');
    expect(e.message).toMatch(/ELOOP/);
  });
});
