import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real watchers and real files: generous per-test deadline, conditions are awaited with until().
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file builds its own temp world; files run in parallel processes (2 cores in CI).
    pool: 'forks',
  },
});
