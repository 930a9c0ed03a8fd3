// Plain regression tests for the secret leaks that the secrets suite (secrets.test.ts) found, one per fix:
// an unquoted secret that YAML reads as a tag or an alias, or that yaml's message echoes with a trailing
// U+2028 / U+0085, was quoted in the error message (and so in logs, status, HTTP and the CLI).
import { describe, expect, it } from 'vitest';
import type { ConfigError } from '../../src/errors.js';
import { parseConfig } from '../../src/load/index.js';

const SECRET = 'Xk9hunter2Qz';

function messageOf(text: string): string {
  try {
    parseConfig(Buffer.from(text), 'yaml', 'config/app.yaml');
  } catch (err) {
    return JSON.stringify((err as ConfigError).toJSON());
  }
  throw new Error('expected a refusal');
}

describe('an unquoted secret is not echoed by the error about it', () => {
  it.each([
    ['a secret starting with ! (a local tag)', `password: !${SECRET}\n`, /custom tag/],
    ['a secret starting with !! (an unknown type tag)', `password: !!${SECRET} x\n`, /custom tag/],
    ['a verbatim tag', `password: !<${SECRET}> x\n`, /custom tag/],
    ['a secret starting with * (an alias)', `password: *${SECRET}\n`, /an alias has no anchor/],
    ['an alias to the anchor it is inside', `password: &${SECRET} [*${SECRET}]\n`, /an alias is inside/],
    ['a token yaml cannot read, ending in U+2028', `> ${SECRET}\u2028\n`, /Not a YAML token/],
    ['a block scalar header with the secret after it, ending in U+2028', `- | ${SECRET}@\u2028\n`, /Not a YAML token/],
  ])('%s', (_what, text, detail) => {
    const message = messageOf(text);
    expect(message).toMatch(detail);
    expect(message).not.toContain(SECRET);
  });

  it('well-known type tags are still named', () => {
    expect(messageOf('a: !!js/function "f"\n')).toContain('!!js/function is not allowed');
    expect(messageOf('a: !!python/object/apply:os.system [id]\n')).toContain('!!python/object/apply is not allowed');
  });
});
