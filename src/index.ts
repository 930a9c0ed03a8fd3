// The public surface of the `hotconf` package: exactly what is exported here.
export { checkConfigs, createHotconf, contentHash, Hotconf, validateOnce } from './hotconf.js';
export type {
  BatchPolicy,
  BatchResult,
  CheckedConfig,
  CheckReport,
  ConfigState,
  FileValidation,
  ConfigStatus,
  DeepReadonly,
  HotconfHealth,
  HotconfOptions,
  HotconfStatus,
  ReloadResult,
  RuntimeOptions,
  SourceStatus,
} from './hotconf.js';
export { EtcdError, PushConflictError } from './etcd/index.js';
export type { EtcdConnectionState, EtcdOptions, EtcdSourceStatus, EtcdTlsOptions } from './etcd/index.js';
export type { Change, ChangeHandler, ConfigEntry, Snapshot, StoreStats, Unsubscribe } from './store/index.js';
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
