// The daemon's settings take the library options' defaults and hotness from the options table: a hot library
// setting is re-applied while running through hot.update(), any other library setting needs a restart.
import { expect, test } from 'vitest';
import { DEFAULTS, diffSettings, runtimeOptionsOf, type DaemonSettings } from '../../src/daemon/settings.js';
import { HOT_OPTIONS } from '../../src/options.js';

const changed = (change: Partial<DaemonSettings>) => diffSettings(DEFAULTS, { ...structuredClone(DEFAULTS), ...change });

test('a change to a hot library setting applies while running; one to any other library setting needs a restart', () => {
  expect(changed({ debounceMs: 5, keepOnDelete: true })).toEqual({ hot: ['debounceMs', 'keepOnDelete'], restart: [] });
  expect(changed({ usePolling: true, debounceMs: 5 })).toEqual({ hot: ['debounceMs'], restart: ['usePolling'] });
});

test('hot.update() is given every hot library setting, and nothing else', () => {
  const next = { ...structuredClone(DEFAULTS), debounceMs: 5, batchPolicy: 'per-file' as const, usePolling: true };
  const runtime = runtimeOptionsOf(next);
  expect(Object.keys(runtime).sort()).toEqual([...HOT_OPTIONS].sort());
  expect(runtime).toMatchObject({ debounceMs: 5, batchPolicy: 'per-file' });
});
