// The yaml package (~70 CommonJS modules), required on first use rather than when the library loads: `import
// 'hotconf'` stays light, and a process that only reads JSON configs never loads it (a .json config is parsed
// by JSON.parse; its YAML tree is built only to raise a precise error or give a position).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let loaded: typeof import('yaml') | undefined;

/** The yaml module, loaded on the first call. */
export function yaml(): typeof import('yaml') {
  return (loaded ??= require('yaml') as typeof import('yaml'));
}
