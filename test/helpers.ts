// Shared test helpers: a temp world per test and waiting by condition with a deadline (never sleep-then-assert).
import { mkdtemp, rm, writeFile, rename, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Polls `condition` until it returns a truthy value (returned) or the deadline passes (throws with `what`). */
export async function until<T>(
  condition: () => T | Promise<T>,
  what = 'condition',
  { timeoutMs = 10_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface TempDir extends AsyncDisposable {
  readonly dir: string;
  /** Absolute path of a file inside the temp dir. */
  file(rel: string): string;
  /** Writes a file in place (creating parent directories). */
  write(rel: string, content: string | Uint8Array): Promise<string>;
  /** Writes via a temp file + rename, as editors and atomic savers do. */
  writeAtomic(rel: string, content: string | Uint8Array): Promise<string>;
}

/** A fresh temp directory, removed on dispose: `await using tmp = await tempDir()`. */
export async function tempDir(prefix = 'hotconf-test-'): Promise<TempDir> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  let n = 0;
  const file = (rel: string) => path.join(dir, rel);
  return {
    dir,
    file,
    async write(rel, content) {
      const p = file(rel);
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, content);
      return p;
    },
    async writeAtomic(rel, content) {
      const p = file(rel);
      await mkdir(path.dirname(p), { recursive: true });
      const tmp = path.join(path.dirname(p), `.${path.basename(p)}.tmp-${process.pid}-${n++}`);
      await writeFile(tmp, content);
      await rename(tmp, p);
      return p;
    },
    async [Symbol.asyncDispose]() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A pino logger that keeps every line (parsed) in memory, for asserting on logs. */
export async function memoryLogger(level = 'debug') {
  const { pino } = await import('pino');
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = pino(
    { level },
    {
      write(chunk: string) {
        raw.push(chunk);
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, raw, text: () => raw.join('') };
}
