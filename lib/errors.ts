/**
 * Errors: `RefscopeError` for every misuse and failure (with the native status code), and
 * `HandlerError` for a user handler that threw.
 *
 * @module
 */

import { Status } from "./ffi/abi.gen.ts";
import type { ObjectId } from "./types.ts";

/**
 * Native status codes (`refscope_status` in `native/include/refscope.h`, generated from the
 * native source): 0 and 1 succeed, negative values are errors. Values never change.
 */
export { Status };

/** The status codes that are errors; every `LIMIT_*` status is reported as `LIMIT`. */
export type NativeErrorCode = Exclude<keyof typeof Status, "OK" | "PENDING" | `LIMIT_${string}`>;

/**
 * What went wrong: a native status name (without `REFSCOPE_E_`), `UNKNOWN` for a status
 * newer than this module, or a failure that happens before any native call can
 * (`LIBRARY_NOT_FOUND`, `ABI_MISMATCH`, `UNSUPPORTED_RUNTIME`: a Node without `node:ffi`).
 */
export type ErrorCode = NativeErrorCode | "UNKNOWN" | "LIBRARY_NOT_FOUND" | "ABI_MISMATCH" | "UNSUPPORTED_RUNTIME";

export type { ObjectId };

/**
 * Thrown for bad input, use after close, and native failures. When thrown, the counter is
 * unchanged.
 */
export class RefscopeError extends Error {
  /** A stable, machine-readable reason. */
  readonly code: ErrorCode;
  /** The native status code (`REFSCOPE_E_*`), or 0 for the codes no native call gives. */
  readonly status: number;

  /**
   * Creates an error; `status` follows from `code` unless given (a `LIMIT` has one status
   * per limit).
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options);
    this.name = "RefscopeError";
    this.code = code;
    this.status = options?.status ?? (code in Status ? Status[code as keyof typeof Status] : 0);
  }
}

const codeByStatus = new Map<number, NativeErrorCode>(
  Object.entries(Status).filter(([, value]) => value < 0).map((
    [name, value],
  ) => [value, (name.startsWith("LIMIT_") ? "LIMIT" : name) as NativeErrorCode]),
);

/**
 * The error for a negative native status, explaining it in terms of `what` was attempted;
 * `message` is the library's own sentence for it (`refscope_status_message`).
 */
export function nativeError(status: number, what: string, message: string): RefscopeError {
  const code = codeByStatus.get(status) ?? "UNKNOWN";
  return new RefscopeError(code, `${what}: ${message}`, { status });
}

/**
 * A value's type, for an error message: `typeof`, but telling null and arrays apart. Never
 * throws: `Array.isArray` throws on a revoked Proxy, and describing bad input must not
 * replace the RefscopeError it explains.
 */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  try {
    return Array.isArray(value) ? "an array" : typeof value;
  } catch {
    return "a revoked Proxy";
  }
}

/** Reported (never thrown at the caller) when an out-of-scope handler throws or rejects. */
export class HandlerError extends Error {
  /** The object whose handler failed. */
  readonly objectId: ObjectId;
  /** What the handler threw, or what its promise rejected with. */
  declare readonly cause: unknown;

  /** Wraps what the handler threw as `cause`. */
  constructor(objectId: ObjectId, cause: unknown) {
    super(`out-of-scope handler for object ${objectId} failed: ${describe(cause)}`, { cause });
    this.name = "HandlerError";
    this.objectId = objectId;
  }
}

/**
 * What a handler threw, for a message. Never throws: a handler may throw anything, even a
 * value `String` refuses (`Object.create(null)`, a throwing `toString`), and an exception
 * here would escape the drain and lose the rest of its batch.
 */
export function describe(cause: unknown): string {
  try {
    return cause instanceof Error ? String(cause.message) : String(cause);
  } catch {
    return "a value that cannot be converted to a string";
  }
}
