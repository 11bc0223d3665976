/**
 * refscope: native reference counting with out-of-scope notifications for Deno, Bun and Node,
 * with Ray Core's semantics (owned and borrowed references, nested objects, lineage,
 * explicit free) in a table that Workers can share.
 *
 * ```ts
 * import { Counter } from "@refscope/refscope"; // from JSR; "refscope" from npm
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
  type HandlerTimeBucket,
  type HandlerTimes,
  type HandlerTimingOptions,
  type Holding,
  type Leak,
  type LeakOptions,
  Lease,
  type LendOptions,
  type LentRef,
  LineageRefs,
  type ObjectInfo,
  type ObjectRecord,
  type OutOfScopeHandler,
  Ref,
  type Sink,
  type SlowHandler,
  type Snapshot,
  SubmittedRefs,
  type Target,
} from "./lib/counter.ts";
export {
  type BudgetFigures,
  type BudgetOptions,
  BudgetOwner,
  type BudgetRelease,
  type BudgetStats,
  MemoryBudget,
  type OwnerFigures,
  type OwnerOptions,
  Reservation,
  type ReserveOptions,
} from "./lib/budget.ts";
export { nativeLibrary } from "./lib/ffi/mod.ts";
export { formatSnapshot, type SnapshotSummary } from "./lib/snapshot.ts";
export {
  type ErrorCode,
  HandlerError,
  type NativeErrorCode,
  type ObjectId,
  RefscopeError,
  Status,
} from "./lib/errors.ts";
