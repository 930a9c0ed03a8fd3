// The load stage: turns a path that the watcher (or a rescan) pointed at into a plain JS value. read.ts reads
// the file asynchronously and accepts only bytes that were stable around the read; parse.ts parses YAML 1.2 or
// strict JSON, refusing hostile input (DESIGN.md point 9), with tree.ts; worker.ts moves large files off the
// main thread. This file only re-exports.
export { formatOf, type ConfigFormat } from '../names.js';
export { firstInvalidUtf8, parseConfig, type ParsedConfig, type ParseOptions, type Position } from './parse.js';
export {
  isTransient,
  RACY_WINDOW_MS,
  readStable,
  sameIdentity,
  statIdentity,
  type FileIdentity,
  type FileRead,
  type ReadOptions,
} from './read.js';
