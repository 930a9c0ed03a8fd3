// DESIGN.md point 10: secrets stay secret: schema properties marked writeOnly or x-hotconf-secret never
// appear in logs or errors, and the store knows where they are so that shells can redact them.
import { describe, expect, it } from 'vitest';
import { redact, REDACTED } from '../../src/index.js';
import { until } from '../helpers.js';
import { start, world } from './fixtures.js';

const SECRET = 'hunter2-s3cr3t-value';
const TOKEN = 'tok-9f8e7d6c5b4a';

describe('secrets (point 10)', () => {
  it('entries carry the pointers of their secret values and redact() hides them', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', `port: 1\npassword: ${SECRET}\nnested:\n  token: ${TOKEN}\n`);
    await using hot = await start(w);
    const entry = hot.snapshot().configs.get('svc')!;
    expect(entry.secrets).toEqual(['/nested/token', '/password']);
    const shown = JSON.stringify(redact(entry.value, entry.secrets));
    expect(shown).not.toContain(SECRET);
    expect(shown).not.toContain(TOKEN);
    expect(shown).toContain(REDACTED);
    expect(hot.get('svc')).toMatchObject({ password: SECRET }); // the application itself gets the real value
  });

  it('no secret reaches the logs (debug level), status or errors, whatever goes wrong', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', `port: 1\npassword: ${SECRET}\n`);
    await using hot = await start(w);
    // a schema error on the secret itself, a syntax error on its line, an unknown key next to it
    await w.configAtomic('svc.yaml', `port: 1\npassword: 12345${SECRET.length}\n`);
    await until(() => hot.status().errors === 1, 'schema error');
    await w.configAtomic('svc.yaml', `port: 1\npassword: "${SECRET}\n`);
    await until(() => hot.status().configs[0]?.error?.code === 'E_PARSE', 'parse error');
    await w.configAtomic('svc.yaml', `port: 1\npassword: ${SECRET}\nother: 1\n`);
    await until(() => hot.status().configs[0]?.error?.code === 'E_SCHEMA', 'unknown key');
    await w.configAtomic('svc.yaml', `port: 2\npassword: ${SECRET}x\n`);
    await until(() => hot.status().errors === 0, 'valid again');
    expect(hot.logs.text()).not.toContain(SECRET);
    expect(JSON.stringify(hot.status())).not.toContain(SECRET);
  });
});

describe('the public content hash', () => {
  it('changes when a secret changes, but cannot be recomputed from a guessed secret', async () => {
    const { contentHash } = await import('../../src/index.js');
    const { createHash } = await import('node:crypto');
    const value = { port: 1, password: 'hunter2' };
    const h = contentHash(value, ['/password']);
    expect(contentHash({ ...value }, ['/password'])).toBe(h); // stable for equal content
    expect(contentHash({ ...value, password: 'hunter3' }, ['/password'])).not.toBe(h);
    // a guesser who knows everything but the key cannot reproduce it
    const guess = createHash('sha256').update('{"password":"hunter2","port":1}').update('\0secrets:/password').digest('hex');
    expect(h).not.toBe(guess);
    expect(contentHash({ port: 1 })).toBe(createHash('sha256').update('{"port":1}').digest('hex'));
  });
});
