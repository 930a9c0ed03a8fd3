// The public surface of the `hotconf` library: exactly what is exported here. It loads no shell: the sidecar's
// pieces are the subpath exports `hotconf/http`, `hotconf/publish` and `hotconf/metrics` (package.json).
export { createHotconf } from './hotconf.js';
export type {
  BatchPolicy,
  BatchResult,
  ConfigState,
  ConfigStatus,
  DeepReadonly,
  Hotconf,
  HotconfHealth,
  HotconfOptions,
  HotconfStatus,
  ReloadResult,
  RuntimeOptions,
  SourceStatus,
} from './hotconf.js';
export { checkConfigs, validateOnce } from './check.js';
export type { CheckedConfig, CheckReport, FileValidation } from './check.js';
export { contentHash } from './pipeline/document.js';
export type { AppCheck, Candidate, CandidateEntry } from './pipeline/appcheck.js';
export { EtcdError } from './source/etcd/client.js';
export { PushConflictError } from './source/etcd/push.js';
export type { EtcdConnectionState, EtcdOptions, EtcdSourceStatus, EtcdTlsOptions } from './source/etcd/client.js';
export type { FilesSourceStatus } from './source/files/index.js';
export type { BatchReason, EntryRead, ReadLimits, Source, SourceBatch, SourceStatusBase, SourceTiming } from './source/index.js';
export { BatchQueue } from './source/queue.js';
export type { HintOptions, QueuedBatch, QueueOptions } from './source/queue.js';
export type { Change, ChangeHandler, ConfigEntry, Snapshot, SourceText, StoreStats, Unsubscribe } from './store/index.js';
export {
  AppCheckError,
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
