/**
 * refscope: native reference counting with out-of-scope notifications for Deno and Bun.
 *
 * ```ts
 * import { Counter } from "./mod.ts";
 *
 * await using counter = new Counter();
 * const ref = counter.create({ sizeBytes: 1 << 20 });
 * ref.onOutOfScope((id) => console.log(`object ${id} is gone`));
 * ref.release(); // the handler runs soon after, on this thread
 * ```
 *
 * @module
 */
export {
  Counter,
  type CounterOptions,
  type CounterStats,
  type CreateOptions,
  type ObjectInfo,
  type OutOfScopeHandler,
  Ref,
  SubmittedRefs,
  type Target,
} from "./lib/counter.ts";
export {
  type ErrorCode,
  HandlerError,
  type NativeErrorCode,
  type ObjectId,
  RefscopeError,
  Status,
} from "./lib/errors.ts";
