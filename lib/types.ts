/**
 * The public types of refscope's values: what `Counter.info`, `Counter.holdings` and
 * `Counter.stats` return, and the types of ids, sinks and handlers. Field names follow the
 * native ones (`refs_local` is `localRefs`, `memory_bytes` is `memoryBytes`).
 *
 * Words, one per idea across Zig, C and TypeScript: a *sink* is one JS thread's part in a
 * counter (its outbox of tokens); a *callback* is what the native table holds for an
 * object (a C function, or a token for a sink); a *handler* is the JS function a sink's
 * token stands for, run on that sink's thread.
 *
 * @module
 */

/** An id of an object in a counter's table. */
export type ObjectId = number;

/**
 * Runs once, on the thread that registered it, when the object goes out of scope or is
 * freed (or, for `onDeleted`, when its entry is deleted). It may return anything, so that
 * `(id) => cache.delete(id)` or `() => freed++` is a handler; a returned promise (any
 * thenable) is awaited only to report its rejection, and, when handlers are timed, to
 * report it while it stays pending.
 */
export type OutOfScopeHandler = (id: ObjectId) => unknown;

/**
 * Who takes part in a counter: a sink (the number of one JS thread's sink), `"native"`
 * (native code, acting for the owner) or `"gone"` (the owner of an object whose owning
 * sink has closed).
 */
export type Sink = number | "native" | "gone";

/** A snapshot of one object. */
export interface ObjectInfo {
  /** The object's id. */
  readonly id: ObjectId;
  /**
   * Its owner: the number of the sink that created it, `"native"` when native code created
   * it (acting for no sink), or `"gone"` once the owning sink has closed or its thread has
   * ended (the object then has no owner, and the handlers registered on it were dropped).
   */
  readonly owner: Sink;
  /** Whether this counter (this JS thread) owns it. */
  readonly owned: boolean;
  /** The owner's local references (its `Ref`s). */
  readonly localRefs: number;
  /** The owner's submitted-task references. */
  readonly submittedRefs: number;
  /** Borrowers' local and submitted-task references. */
  readonly borrowedRefs: number;
  /** How many sinks other than the owner hold references. */
  readonly borrowers: number;
  /** References lent (`Ref.lend`) and not yet borrowed. */
  readonly lentRefs: number;
  /** Lineage references: explicit pins, and objects whose lineage depends on it. */
  readonly lineageRefs: number;
  /** Owned containers in scope that contain it. */
  readonly containedIn: number;
  /** Out-of-scope callbacks (every sink's handlers, native callbacks) not yet handed over. */
  readonly pendingCallbacks: number;
  /** Reference-deleted callbacks not yet handed over. */
  readonly pendingDeletedCallbacks: number;
  /** Explicitly freed: its out-of-scope handlers have fired. */
  readonly freed: boolean;
  /** Out of scope, kept only by lineage: deleted when its lineage references go. */
  readonly outOfScope: boolean;
  /** Lineage references only delay its deletion (they do not keep it in scope). */
  readonly reconstructable: boolean;
  /** The size given at creation. */
  readonly sizeBytes: number;
}

/** One sink's references on an object, besides the owner's local and submitted. */
export interface Holding {
  /** Who holds them. */
  readonly sink: Sink;
  /** Local references (as a borrower). */
  readonly localRefs: number;
  /** Submitted-task references (as a borrower). */
  readonly submittedRefs: number;
  /** References it lent and nobody has borrowed yet. */
  readonly lentRefs: number;
  /** Lineage references it pinned. */
  readonly lineageRefs: number;
}

/** Counter-wide figures. */
export interface CounterStats {
  /** Objects in the table (in scope, or freed or lineage-pinned with an entry left). */
  readonly liveObjects: number;
  /** The sum of the live objects' sizes. */
  readonly liveBytes: number;
  /** Objects ever created. */
  readonly objectsCreated: number;
  /** Callbacks ever registered, by every sink and by native code. */
  readonly callbacksRegistered: number;
  /** Callbacks that left the table (fired, or waiting to be delivered). */
  readonly callbacksReleased: number;
  /** Tokens (each a handler to run) waiting in every sink's outbox. */
  readonly pendingTokens: number;
  /** This thread's handlers registered and not yet run. */
  readonly pendingHandlers: number;
  /** This thread's handlers that have run. */
  readonly handlersFired: number;
  /** This thread's handlers that threw or rejected. */
  readonly handlerErrors: number;
  /** Coalesced wakes sent to sinks (by their waker threads). */
  readonly wakesSent: number;
  /** Sinks open: JS threads taking part. */
  readonly openSinks: number;
  /** Tokens dropped because their sink had closed (its thread exited, say). */
  readonly discardedTokens: number;
  /**
   * Native memory allocated for the table's entries and callbacks (capacity, not use). It
   * stays at its peak while the creating thread has objects live, and is given back about a
   * second after it has none (4 bytes per slot used remain: see the README's Known limits).
   */
  readonly memoryBytes: number;
  /**
   * Waker threads let go while inside a wake that has not returned (their sink's
   * thread ended meanwhile); each keeps only the counter's memory until it returns.
   */
  readonly wakersBlocked: number;
  /**
   * How long this thread's handlers ran, when the counter times them (`CounterOptions`
   * `handlerTiming`); undefined otherwise.
   */
  readonly handlerTimes: HandlerTimes | undefined;
}

/**
 * How long one thread's handlers ran: the synchronous part of each, the time it held up
 * every later handler and the event loop. An async handler's pending time is not in it;
 * only a `SlowHandler` report tells of it.
 */
export interface HandlerTimes {
  /** Handlers timed. */
  readonly count: number;
  /** Their run time in all, in ms. */
  readonly totalMs: number;
  /** The longest run, in ms. */
  readonly maxMs: number;
  /**
   * The runs by duration, in decades: `count` ran for less than `belowMs` and at least the
   * previous bucket's `belowMs` (the first bucket from 0, the last up to `Infinity`).
   */
  readonly buckets: readonly HandlerTimeBucket[];
  /** Handlers reported slow: they ran, or stayed pending, for `slowMs` or more. */
  readonly slow: number;
}

/** One bucket of `HandlerTimes.buckets`. */
export interface HandlerTimeBucket {
  /** The bucket's upper bound in ms (exclusive): 0.001, 0.01, … 1000, then `Infinity`. */
  readonly belowMs: number;
  /** Runs that fell in it. */
  readonly count: number;
}

/** A handler that ran, or stayed pending, for at least the threshold (`slowMs`). */
export interface SlowHandler {
  /** The object whose handler it is. */
  readonly objectId: ObjectId;
  /** The handler itself (its `name` says which, for a named function). */
  readonly handler: OutOfScopeHandler;
  /** How long it ran, in ms; for a pending one, how long it has been pending so far. */
  readonly ms: number;
  /** True for an async handler whose promise had not settled after `slowMs`. */
  readonly pending: boolean;
}

/** A `Ref` or lease that was garbage-collected while it still held references. */
export interface Leak {
  /** `"ref"` for a `Ref`; `"submitted"` or `"lineage"` for a lease. */
  readonly kind: "ref" | "submitted" | "lineage";
  /** The objects it kept in scope, one reference each (a `Ref`: one). */
  readonly ids: readonly ObjectId[];
  /** Their sizes in all, as created (0 for those deleted since, by a close say). */
  readonly sizeBytes: number;
  /** Where it was made (an `Error` stack), or undefined when stacks are off. */
  readonly stack: string | undefined;
}
