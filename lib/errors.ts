/**
 * Errors: `RefscopeError` for every misuse and failure (with the native status code), and
 * `HandlerError` for a user handler that threw.
 *
 * @module
 */

/** Native status codes (`REFSCOPE_*` in `native/include/refscope.h`); values never change. */
export const Status = {
  OK: 0,
  DRAIN: 1,
  PENDING: 2,
  RELAY: 4,
  DRAIN_RELAY: 5,
  INVALID_ARGUMENT: -1,
  INVALID_ID: -2,
  STALE_ID: -3,
  NO_REFERENCE: -4,
  LIMIT: -5,
  OUT_OF_MEMORY: -6,
  CLOSED: -7,
  WRONG_THREAD: -8,
  SYSTEM_RESOURCES: -9,
  NOT_OWNED: -10,
  LIMIT_PARTICIPANTS: -11,
  LIMIT_THREAD: -12,
  LIMIT_COUNTERS: -13,
} as const;

/** Success bits of a mutation's status (`REFSCOPE_DRAIN`, `REFSCOPE_RELAY`). */
export const Outcome = { DRAIN: 1, RELAY: 4 } as const;

/** The status codes that are errors. */
export type NativeErrorCode = Exclude<
  keyof typeof Status,
  "OK" | "DRAIN" | "PENDING" | "RELAY" | "DRAIN_RELAY" | `LIMIT_${string}`
>;

/**
 * What went wrong: a native status name (without `REFSCOPE_E_`), or a failure that happens
 * before any native call can (`LIBRARY_NOT_FOUND`, `ABI_MISMATCH`).
 */
export type ErrorCode = NativeErrorCode | "LIBRARY_NOT_FOUND" | "ABI_MISMATCH";

/** An id of an object in a counter's table. */
export type ObjectId = number;

/**
 * Thrown for bad input, use after close, and native failures. When thrown, the counter is
 * unchanged.
 */
export class RefscopeError extends Error {
  /** A stable, machine-readable reason. */
  readonly code: ErrorCode;
  /** The native status code (`REFSCOPE_E_*`), or 0 for `LIBRARY_NOT_FOUND`/`ABI_MISMATCH`. */
  readonly status: number;

  /**
   * Creates an error; `status` follows from `code` unless given (a `LIMIT` has one status
   * per limit).
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options);
    this.name = "RefscopeError";
    this.code = code;
    this.status = options?.status ?? (code in Status ? Status[code as NativeErrorCode] : 0);
  }
}

const codeByStatus = new Map<number, NativeErrorCode>(
  Object.entries(Status).filter(([, value]) => value < 0).map((
    [name, value],
  ) => [value, (name.startsWith("LIMIT_") ? "LIMIT" : name) as NativeErrorCode]),
);

/** The error for a negative native status, explaining it in terms of `what` was attempted. */
export function errorFromStatus(status: number, what: string): RefscopeError {
  const code = codeByStatus.get(status);
  if (code === undefined) {
    return new RefscopeError("INVALID_ARGUMENT", `${what}: unexpected native status ${status}`);
  }
  const message = limitMessages.get(status) ?? statusMessages[code];
  return new RefscopeError(code, `${what}: ${message}`, { status });
}

const limitMessages = new Map<number, string>([
  [Status.LIMIT_PARTICIPANTS, "the counter has its maximum of 64 participants (JS threads attached)"],
  [
    Status.LIMIT_THREAD,
    "this thread has its maximum of 128 registrations: one per counter it takes part in, one more per counter it opened",
  ],
  [Status.LIMIT_COUNTERS, "the process has its maximum of 1024 open counters"],
]);

const statusMessages: Record<NativeErrorCode, string> = {
  INVALID_ARGUMENT: "an argument is outside its domain",
  INVALID_ID: "not an object id issued by this counter",
  STALE_ID: "the object has been deleted (or, for a new reference, is out of scope and kept only by lineage)",
  NO_REFERENCE: "no reference of that kind is held",
  LIMIT:
    "a reference count, the object table (2^24 objects), the byte total or the nesting depth (1000) would overflow",
  OUT_OF_MEMORY: "out of memory",
  CLOSED: "the counter is closed",
  WRONG_THREAD: "not allowed on this thread",
  SYSTEM_RESOURCES: "the operating system refused a resource",
  NOT_OWNED: "only the object's owner may do this",
};

/** Reported (never thrown at the caller) when an out-of-scope handler throws or rejects. */
export class HandlerError extends Error {
  /** The object whose handler failed. */
  readonly objectId: ObjectId;

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
function describe(cause: unknown): string {
  try {
    return cause instanceof Error ? String(cause.message) : String(cause);
  } catch {
    return "a value that cannot be converted to a string";
  }
}
