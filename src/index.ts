// The public surface of the `hotconf` package: exactly what is exported here.
export { createHotconf, contentHash, Hotconf } from './hotconf.js';
export type {
  BatchPolicy,
  ConfigState,
  ConfigStatus,
  DeepReadonly,
  HotconfOptions,
  HotconfStatus,
  ReloadResult,
} from './hotconf.js';
export type { Change, ChangeHandler, ConfigEntry, Snapshot, Unsubscribe } from './store/index.js';
export type { ChangeBatch } from './watch/index.js';
export {
  ConfigError,
  HotconfError,
  InitialLoadError,
  NameConflictError,
  ParseError,
  ReadError,
  SchemaError,
  formatLocation,
} from './errors.js';
export type { ConfigErrorJSON, ErrorLocation, HotconfErrorCode } from './errors.js';
export { redact, REDACTED } from './validate/index.js';
