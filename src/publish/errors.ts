// How publish words a failure: E_OPTIONS for what the caller must fix (bad options, an unusable directory), and
// one line (message and cause, no stack, no value) for the logs of a delivery or write that failed.
import { HotconfError } from '../errors.js';

/** An error in one line for a log: its message, and its cause's message when it has one. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** Throws E_OPTIONS: something the caller must fix (an option, an unusable directory). */
export function fail(message: string, cause?: unknown): never {
  throw new HotconfError('E_OPTIONS', message, cause === undefined ? {} : { cause });
}
