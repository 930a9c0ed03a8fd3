// redactSourceText: the source text of a config with its secret values replaced where they are written, for
// `hotconf diff`. Comments and layout stay; a secret that cannot be located hides the whole text.
import { describe, expect, test } from 'vitest';
import { redactSourceText } from '../../src/check.js';

const R = '"[REDACTED]"';
const redact = (text: string, file: string, secrets: string[]) => redactSourceText(Buffer.from(text), file, secrets);

describe('redactSourceText', () => {
  test('YAML scalars in every style, comments kept', () => {
    const text = '# db\nuser: app  # who\npassword: hunter2 # the secret\ntoken: "abc def"\nkey: |\n  line one\n  line two\nport: 5432\n';
    expect(redact(text, 'db.yaml', ['/password', '/token', '/key'])).toBe(`# db\nuser: app  # who\npassword: ${R} # the secret\ntoken: ${R}\nkey: ${R}\nport: 5432\n`);
    expect(redact(text, 'db.yaml', [])).toBe(text);
  });

  test('a secret reached through an alias is redacted at its anchor too; merged keys where they are written', () => {
    const text = 'shared: &pw s3cret\npassword: *pw\nbase: &base\n  token: t0ken\nsvc:\n  <<: *base\n  name: x\n';
    const out = redact(text, 'a.yaml', ['/password', '/svc/token'])!;
    expect(out).not.toContain('s3cret');
    expect(out).not.toContain('t0ken');
    expect(out).toContain(`shared: &pw ${R}`);
    expect(out).toContain(`password: ${R}`);
  });

  test('JSON: nested objects and arrays; a secret object is redacted whole', () => {
    const text = '{\n  "db": {"password": "p@ss", "port": 1},\n  "keys": ["k1", "k2"],\n  "creds": {"a": "x", "b": "y"}\n}\n';
    expect(redact(text, 'c.json', ['/db/password', '/keys/1', '/creds', '/creds/a'])).toBe(`{\n  "db": {"password": ${R}, "port": 1},\n  "keys": ["k1", ${R}],\n  "creds": ${R}\n}\n`);
  });

  test('a secret that cannot be located, or text that does not parse, shows nothing', () => {
    expect(redact('a: 1\n', 'x.yaml', ['/nope'])).toBeUndefined();
    expect(redact('a: [1\n', 'x.yaml', ['/a'])).toBeUndefined();
    expect(redact('a: 1\n', 'x.txt', [])).toBeUndefined();
  });
});
