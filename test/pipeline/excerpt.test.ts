// excerptsOf: the lines around a refused document's errors, bounded, with the secrets masked where they start,
// on the lines that continue them, and wherever their values are written.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { EXCERPT_CONTEXT_LINES, EXCERPT_MAX, EXCERPT_MAX_LINES, EXCERPT_MAX_LINE_CHARS, excerptsOf } from '../../src/pipeline/excerpt.js';

const at = (line: number, col = 1) => new ConfigError('E_SCHEMA', { file: 'f.yaml', line, col, pointer: '/x' }, 'bad');
const none = { positions: [], values: [] };
const numbered = (n: number) => Array.from({ length: n }, (_, i) => `l${i + 1}: ${i + 1}`).join('\n') + '\n';

describe('excerptsOf', () => {
  it('shows the lines around each error, merging near ones, at most EXCERPT_MAX excerpts', () => {
    const text = numbered(200);
    expect(excerptsOf(text, [at(10), at(12)], none)).toEqual({
      excerpts: [{ line: 10 - EXCERPT_CONTEXT_LINES, lines: Array.from({ length: 12 + EXCERPT_CONTEXT_LINES - (10 - EXCERPT_CONTEXT_LINES) + 1 }, (_, i) => `l${i + 7}: ${i + 7}`) }],
    });
    const far = Array.from({ length: EXCERPT_MAX + 3 }, (_, i) => at(10 + i * 20));
    const got = excerptsOf(text, far, none);
    expect('excerpts' in got && got.excerpts.map((e) => e.line)).toEqual(Array.from({ length: EXCERPT_MAX }, (_, i) => 7 + i * 20));
    // Errors on many nearby lines: one long excerpt, cut at EXCERPT_MAX_LINES lines in all.
    const dense = excerptsOf(text, Array.from({ length: 40 }, (_, i) => at(10 + i * 4)), none);
    expect('excerpts' in dense && dense.excerpts.map((e) => [e.line, e.lines.length])).toEqual([[7, EXCERPT_MAX_LINES]]);
    // The first and last lines bound the window; the newline at the end is no line of its own.
    expect(excerptsOf('a: 1\nb: 2\n', [at(1)], none)).toEqual({ excerpts: [{ line: 1, lines: ['a: 1', 'b: 2'] }] });
    expect(excerptsOf('a: 1\n', [new ConfigError('E_NO_SCHEMA', { file: 'f' }, 'no schema')], none)).toEqual({ excerpts: [] });
  });

  it('cuts long lines, after masking (a secret is never half shown)', () => {
    const secret = 'z'.repeat(EXCERPT_MAX_LINE_CHARS);
    const got = excerptsOf(`k: ${'a'.repeat(EXCERPT_MAX_LINE_CHARS - 5)}${secret}\n`, [at(1)], { positions: [], values: [secret] });
    const line = 'excerpts' in got ? got.excerpts[0]!.lines[0]! : '';
    expect(line).toBe(`k: ${'a'.repeat(EXCERPT_MAX_LINE_CHARS - 5)}[REDACTED]`.slice(0, EXCERPT_MAX_LINE_CHARS) + '…');
    expect(line).not.toContain('z');
  });

  it('masks a secret from where it starts, the lines that continue it, and its value wherever it is written', () => {
    const text = ['db:', '  key: >', '    folded part one', '    folded part two', '  port: x', 'list:', '  - s3cr3t-in-a-list', '  - other', 'copy: "s3cr3t-in-a-list"', ''].join('\n');
    const got = excerptsOf(text, [at(5, 9), at(6)], { positions: [{ line: 2, col: 8 }, { line: 7, col: 5 }], values: ['folded part one folded part two', 's3cr3t-in-a-list'] });
    expect(got).toEqual({
      excerpts: [{ line: 2, lines: ['  key: [REDACTED]', '    [REDACTED]', '    [REDACTED]', '  port: x', 'list:', '  - [REDACTED]', '  - other', 'copy: "[REDACTED]"'] }],
    });
    // A value that starts its own line: the lines below it as indented are its continuation too.
    const plain = ['k:', '  first half', '  second half', 'next: 1'].join('\n');
    expect(excerptsOf(plain, [at(4)], { positions: [{ line: 2, col: 3 }], values: ['first half second half'] })).toEqual({
      excerpts: [{ line: 1, lines: ['k:', '  [REDACTED]', '  [REDACTED]', 'next: 1'] }],
    });
  });
});
