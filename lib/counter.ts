/**
 * The public API: a `Counter` of objects, `Ref` handles that each hold one local
 * reference, leases that hold submitted-task or lineage references, and the lend/borrow
 * hand-off between JS threads.
 *
 * @module
 */
import { setTimeout } from "node:timers";
import { Core } from "./core.ts";
import { defaultSlowMs, HandlerTiming, LeakDetector } from "./diagnostics.ts";
import { type HandlerError, RefscopeError, typeName } from "./errors.ts";
import { CallbackKind, sinkNone } from "./ffi/abi.gen.ts";
import { type ObjectRecord, type Snapshot, takeSnapshot } from "./snapshot.ts";
import type {
  CounterStats,
  HandlerTimeBucket,
  HandlerTimes,
  Holding,
  Leak,
  ObjectId,
  ObjectInfo,
  OutOfScopeHandler,
  Sink,
  SlowHandler,
} from "./types.ts";

export type {
  CounterStats,
  HandlerTimeBucket,
  HandlerTimes,
  Holding,
  Leak,
  ObjectInfo,
  ObjectRecord,
  OutOfScopeHandler,
  Sink,
  SlowHandler,
  Snapshot,
};

/** Options for `new Counter()` and `Counter.attach()`, for this thread's use of the counter. */
export interface CounterOptions {
  /** Receives every error thrown (or rejected) by a handler on this thread. */
  onHandlerError?: (error: HandlerError) => void;
  /**
   * Leak detection, off by default: a `Ref` or lease of this thread that is garbage-collected
   * while it still holds its references is reported (never released). `true` reports each
   * with `console.warn`, on one line; an object chooses.
   */
  leaks?: boolean | LeakOptions;
  /**
   * Handler timing, off by default (it reads the clock once per handler): the run time of
   * each of this thread's handlers goes into `stats().handlerTimes`, and handlers that run,
   * or stay pending, for `slowMs` or more are reported. `true` reports each with
   * `console.warn` at the default threshold (10 ms); an object chooses.
   */
  handlerTiming?: boolean | HandlerTimingOptions;
}

/** How leaks are reported (`CounterOptions.leaks`). */
export interface LeakOptions {
  /** Receives each leak; without it, each is reported by `console.warn`, on one line. */
  onLeak?: (leak: Leak) => void;
  /**
   * Whether to capture, as each `Ref` and lease is made, where it was made (an `Error`
   * stack, some microseconds each). Default true.
   */
  stacks?: boolean;
}

/** How slow handlers are reported (`CounterOptions.handlerTiming`). */
export interface HandlerTimingOptions {
  /** The threshold in ms, a number >= 0: a handler that runs, or stays pending, this long is slow. Default 10. */
  slowMs?: number;
  /** Receives each slow handler; without it, each is reported by `console.warn`, on one line. */
  onSlow?: (slow: SlowHandler) => void;
}

/** Options for `Ref.lend`. */
export interface LendOptions {
  /**
   * Reclaims the reference on this thread (as `Counter.reclaim` does) if nobody has
   * borrowed it within this many ms: for a receiver that may end first. An integer in
   * [0, 2^31). A borrow after that gets `NO_REFERENCE`. The timer does not keep the
   * process alive.
   */
  reclaimAfterMs?: number;
}

/** Options for `Counter.create`. */
export interface CreateOptions {
  /** The object's size, for accounting: an integer in [0, 2^53). Default 0. */
  sizeBytes?: number;
  /** Objects it contains: each stays in scope while this one is (repeats count once). */
  contains?: Iterable<Target>;
  /**
   * Objects its lineage depends on (the task that made it took them as arguments): each
   * gets a lineage reference until this object is deleted (repeats count once).
   */
  lineage?: Iterable<Target>;
  /**
   * Whether it could be rebuilt from its lineage. Lineage references then only delay its
   * deletion, instead of keeping it in scope. Default false.
   */
  reconstructable?: boolean;
}

/**
 * A reference in transit between JS threads: plain data, so it crosses `postMessage`.
 * Made by `Ref.lend()`, claimed once by `Counter.borrow()` on the receiving thread.
 */
export interface LentRef {
  /** The counter's key (`Counter.key`). */
  readonly key: number;
  /** The object. */
  readonly id: ObjectId;
  /** The sink that lent it. */
  readonly lender: number;
  /**
   * Which of the sinks numbered `lender` lent it: numbers are reused once a sink closes,
   * and a reference lent by an earlier one can never claim a later one's.
   */
  readonly generation: number;
}

/** Something that names an object: a `Ref` or a raw id. */
export type Target = Ref | ObjectId;

// Module-private access to state that the classes below share but do not publish.
let isRef: (value: unknown) => value is Ref;
let refCore: (ref: Ref) => Core;
let refHeld: (ref: Ref) => boolean;
let setRefHeld: (ref: Ref, held: boolean) => void;
const constructing = Symbol("refscope.constructing");
/** What `Counter.attach` hands the constructor, under a token object only it holds. */
const attachments = new WeakMap<object, { core: Core; options: ThreadOptions }>();

/**
 * One local reference to an object. `release()` (or leaving a `using` block) drops it;
 * `retain()` returns another, independent one; `lend()` hands it to another JS thread.
 */
export class Ref implements Disposable {
  /** The object's id. */
  readonly id: ObjectId;
  /** The counter the reference belongs to (this thread's). */
  readonly counter: Counter;
  #core: Core;
  #held = true;

  static {
    // A brand check, not `instanceof`: `Object.create(Ref.prototype)` or a Proxy of a Ref
    // passes `instanceof` but has no private state.
    isRef = (value): value is Ref => typeof value === "object" && value !== null && #core in value;
    refCore = (ref) => ref.#core;
    refHeld = (ref) => ref.#held;
    setRefHeld = (ref, held) => {
      ref.#held = held;
    };
  }

  /** Refs come from `Counter.create`, `Counter.borrow` and `Ref.retain`; not public. */
  constructor(key: typeof constructing, counter: Counter, core: Core, id: ObjectId) {
    if (key !== constructing) throw new TypeError("Ref is not constructible; use Counter.create or Ref.retain");
    this.counter = counter;
    this.#core = core;
    this.id = id;
    core.leaks?.track(this, "ref", [id]);
  }

  /** True once this reference has been released (or lent). */
  get released(): boolean {
    return !this.#held;
  }

  /** Adds a local reference and returns it as a new `Ref`. */
  retain(): Ref {
    this.#checkHeld("retain");
    this.#core.retain(this.id);
    return new Ref(constructing, this.counter, this.#core, this.id);
  }

  /**
   * Drops this reference. Releasing the same `Ref` twice throws `NO_REFERENCE`. Once the
   * counter is closed (by this thread or, for an attached one, by its opener), it only
   * marks the `Ref` released: the close released every reference already.
   */
  release(): void {
    this.#checkHeld("release");
    // Inline, not through `releaseQuietly`: a closure per release costs the hot path.
    try {
      this.#core.release(this.id);
    } catch (error) {
      if (!isClosed(error)) throw error;
    }
    this.#held = false;
    this.#core.leaks?.untrack(this);
  }

  /**
   * Hands this reference to another JS thread: returns plain data to send it (with
   * `postMessage`), which that thread claims with `counter.borrow(lent)`. The object stays
   * in scope meanwhile, and this `Ref` counts as released. To keep one, lend a `retain()`.
   * Until claimed, the reference is charged to this thread: if the receiver never borrows
   * it (it ended first, say), take it back with `counter.reclaim(lent)`, or lend with
   * `reclaimAfterMs` to have that done for you; it is also released when this thread
   * closes its counter or ends.
   */
  lend(options: LendOptions = {}): LentRef {
    this.#checkHeld("lend");
    const reclaimAfterMs = readLendOptions(options);
    this.#core.lend(this.id);
    this.#held = false;
    this.#core.leaks?.untrack(this);
    const lent: LentRef = Object.freeze({
      key: this.#core.key,
      id: this.id,
      lender: this.#core.sink,
      generation: this.#core.delivery.generation,
    });
    if (reclaimAfterMs !== undefined) reclaimLater(this.counter, lent, reclaimAfterMs);
    return lent;
  }

  /** Releases if still held; otherwise does nothing. */
  [Symbol.dispose](): void {
    if (this.#held) this.release();
  }

  /** Same as `counter.onOutOfScope(this, handler)`. */
  onOutOfScope(handler: OutOfScopeHandler): boolean {
    return this.counter.onOutOfScope(this, handler);
  }

  /** Same as `counter.offOutOfScope(this, handler)`. */
  offOutOfScope(handler: OutOfScopeHandler): boolean {
    return this.counter.offOutOfScope(this, handler);
  }

  /** Same as `counter.onDeleted(this, handler)`. */
  onDeleted(handler: OutOfScopeHandler): boolean {
    return this.counter.onDeleted(this, handler);
  }

  /** Same as `counter.free(this)`. */
  free(): void {
    this.counter.free(this);
  }

  /** Same as `counter.info(this)`. */
  info(): ObjectInfo | undefined {
    return this.counter.info(this);
  }

  #checkHeld(what: string): void {
    if (!this.#held) {
      throw new RefscopeError("NO_REFERENCE", `${what}: this Ref to object ${this.id} was already released`);
    }
  }
}

/** References of one kind (submitted-task or lineage) held on a set of objects until released, once. */
export class Lease implements Disposable {
  /** The objects, one reference each (an id may repeat). */
  readonly ids: readonly ObjectId[];
  #core: Core;
  #kind: "submitted" | "lineage";
  #held = true;

  /** Leases come from `Counter.addSubmittedRefs` and `addLineageRefs`; not public. */
  constructor(key: typeof constructing, core: Core, kind: "submitted" | "lineage", ids: readonly ObjectId[]) {
    if (key !== constructing) throw new TypeError("leases come from Counter.addSubmittedRefs/addLineageRefs");
    this.#core = core;
    this.#kind = kind;
    this.ids = ids;
    core.leaks?.track(this, kind, ids);
  }

  /** True once released. */
  get released(): boolean {
    return !this.#held;
  }

  /**
   * Removes the references. Twice throws `NO_REFERENCE`. Once the counter is closed, it
   * only marks the lease released, as `Ref.release` does.
   */
  release(): void {
    if (!this.#held) throw new RefscopeError("NO_REFERENCE", `release: these ${this.#kind} refs were already released`);
    releaseQuietly(() => this.#core.lease(this.#kind, false, this.ids));
    this.#held = false;
    this.#core.leaks?.untrack(this);
  }

  /** Releases if still held; otherwise does nothing. */
  [Symbol.dispose](): void {
    if (this.#held) this.release();
  }
}

/**
 * Runs a release, ignoring `CLOSED`: the counter was closed (perhaps by another thread),
 * which released every reference already, so that cleanup in `finally` needs no try.
 */
function releaseQuietly(release: () => void): void {
  try {
    release();
  } catch (error) {
    if (!isClosed(error)) throw error;
  }
}

function isClosed(error: unknown): boolean {
  return error instanceof RefscopeError && error.code === "CLOSED";
}

/** Submitted-task references (a task took the objects as arguments), from `addSubmittedRefs`. */
export class SubmittedRefs extends Lease {}

/** Lineage references (a retryable task may still need the objects), from `addLineageRefs`. */
export class LineageRefs extends Lease {}

/**
 * A reference counter with out-of-scope notifications, backed by librefscope, with Ray
 * Core's semantics: owned and borrowed references, nested objects, lineage, explicit free.
 *
 * An object is in scope while it is referenced; when the last reference goes, from JS or
 * from any native thread, its out-of-scope handlers run on the JS thread that registered
 * them, in registration order, exactly once, after the releasing call has returned.
 *
 * One counter can be shared by several JS threads (Workers): each other thread attaches
 * with `Counter.attach(counter.key)`, and references move between threads with
 * `Ref.lend()` and `Counter.borrow()`.
 */
export class Counter implements AsyncDisposable {
  #core: Core;
  #closing: Promise<void> | undefined;

  /** Opens a new counter (starting its native dispatcher thread). */
  constructor(options: CounterOptions = {}) {
    // `Counter.attach` passes a token of its own, never seen outside this module.
    const attached = attachments.get(options);
    if (attached !== undefined) {
      attachments.delete(options);
      this.#core = configure(attached.core, attached.options);
      return;
    }
    const read = readOptions(options, "new Counter");
    this.#core = configure(Core.open(), read);
  }

  /**
   * Attaches this JS thread (typically a Worker) to the counter another thread opened,
   * whose `key` it received. Its objects, handlers and references are its own; closing it
   * (or the thread ending) releases what it holds, and leaves the counter open.
   */
  static attach(key: number, options: CounterOptions = {}): Counter {
    const read = readOptions(options, "attach");
    const token = {};
    attachments.set(token, { core: Core.attach(key), options: read });
    return new Counter(token);
  }

  /** The key other JS threads pass to `Counter.attach`. */
  get key(): number {
    return this.#core.key;
  }

  /** This JS thread's sink number in the counter (owners and borrowers are these). */
  get sink(): number {
    return this.#core.sink;
  }

  /** Receives errors from handlers; when unset they are logged with `console.error`. */
  get onHandlerError(): ((error: HandlerError) => void) | undefined {
    return this.#core.delivery.onHandlerError;
  }

  set onHandlerError(hook: ((error: HandlerError) => void) | undefined) {
    checkHook(hook, "onHandlerError");
    this.#core.delivery.onHandlerError = hook;
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#core.state !== "open";
  }

  /** Creates an object owned by this thread, holding one local reference (the `Ref`). */
  create(options: CreateOptions = {}): Ref {
    if (typeof options !== "object" || options === null) {
      throw new RefscopeError("INVALID_ARGUMENT", `create: options must be an object, not ${typeName(options)}`);
    }
    const sizeBytes = options.sizeBytes ?? 0;
    if (typeof sizeBytes !== "number") {
      throw new RefscopeError("INVALID_ARGUMENT", `create: sizeBytes must be a number, not ${typeName(sizeBytes)}`);
    }
    const reconstructable = options.reconstructable ?? false;
    if (typeof reconstructable !== "boolean") {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `create: reconstructable must be a boolean, not ${typeName(reconstructable)}`,
      );
    }
    const contains = options.contains === undefined ? [] : this.#ids(options.contains, "create (contains)");
    const lineage = options.lineage === undefined ? [] : this.#ids(options.lineage, "create (lineage)");
    const id = this.#core.create(sizeBytes, reconstructable, contains, lineage);
    return new Ref(constructing, this, this.#core, id);
  }

  /** Claims a reference another thread lent (`Ref.lend()`), as a `Ref` of this thread. */
  borrow(lent: LentRef): Ref {
    this.#core.checkOpen("borrow");
    const { id, lender, generation } = readLent(lent, this.#core.key, "borrow");
    this.#core.borrow(id, lender, generation);
    return new Ref(constructing, this, this.#core, id);
  }

  /**
   * Takes back a reference this thread lent (`Ref.lend()`) that nobody has borrowed, and
   * releases it: true if it was still unclaimed, false if it had been borrowed or reclaimed
   * already (or released by a close, or by the end of this thread's earlier participant
   * in the same sink). Exactly one of a borrow and a reclaim racing for the same reference
   * gets it. Reclaiming another thread's lend throws `INVALID_ARGUMENT`.
   */
  reclaim(lent: LentRef): boolean {
    const core = this.#core;
    const { id, lender, generation } = readLent(lent, core.key, "reclaim");
    if (lender !== core.sink) {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `reclaim: object ${id} was lent by sink ${lender}, not by this thread (sink ${core.sink})`,
      );
    }
    // A close released every lent reference, as did the end of an earlier participant.
    if (core.state !== "open" || generation !== core.delivery.generation) return false;
    return core.reclaim(id, lender, generation);
  }

  /**
   * Registers `handler` to run once the object is out of scope or freed. Returns false,
   * registering nothing, when it could never run: the object is deleted, freed, or out of
   * scope but kept by lineage (as Ray does). Only the owner may register (`NOT_OWNED`).
   */
  onOutOfScope(target: Target, handler: OutOfScopeHandler): boolean {
    return this.#core.register(CallbackKind.OUT_OF_SCOPE, this.#idOf(target, "onOutOfScope"), handler, "onOutOfScope");
  }

  /** Removes the first registration of `handler`; true if it was removed before it fired. */
  offOutOfScope(target: Target, handler: OutOfScopeHandler): boolean {
    return this.#core.unregister(
      CallbackKind.OUT_OF_SCOPE,
      this.#idOf(target, "offOutOfScope"),
      handler,
      "offOutOfScope",
    );
  }

  /**
   * Registers `handler` to run once the object's entry is erased: out of scope and no
   * lineage reference left. False only when the object is already deleted. Owner only.
   */
  onDeleted(target: Target, handler: OutOfScopeHandler): boolean {
    return this.#core.register(CallbackKind.DELETED, this.#idOf(target, "onDeleted"), handler, "onDeleted");
  }

  /** Removes the first `onDeleted` registration of `handler`; true if removed before it fired. */
  offDeleted(target: Target, handler: OutOfScopeHandler): boolean {
    return this.#core.unregister(CallbackKind.DELETED, this.#idOf(target, "offDeleted"), handler, "offDeleted");
  }

  /**
   * Frees an object this thread owns now: its out-of-scope handlers fire (once in total)
   * and later registrations are refused; its entry stays, and its ids keep working, until
   * its references drop. Freeing another thread's object throws `NOT_OWNED`.
   */
  free(target: Target): void {
    this.#core.free(this.#idOf(target, "free"));
  }

  /** A snapshot of the object, or undefined once it has been deleted. */
  info(target: Target): ObjectInfo | undefined {
    return this.#core.info(this.#idOf(target, "info"));
  }

  /** Who else holds references on the object (borrowers, lenders, lineage pins). */
  holdings(target: Target): Holding[] {
    return this.#core.holdings(this.#idOf(target, "holdings"));
  }

  /**
   * Releases many `Ref`s in one native call. All or nothing: if any is foreign, already
   * released or repeated, nothing is released and a `RefscopeError` is thrown. Once the
   * counter is closed, it only marks them released, as `Ref.release` does.
   */
  releaseAll(refs: Iterable<Ref>): void {
    if (typeof refs !== "object" || refs === null || !(Symbol.iterator in refs)) {
      throw new RefscopeError("INVALID_ARGUMENT", `releaseAll: expected an iterable of Refs, got ${typeName(refs)}`);
    }
    // Each element is read once (an element getter may answer differently on a second
    // read) and checked as it is read, so that an endless or huge iterable ends at its
    // first bad element, a repeat included; the undo resets exactly the Refs taken.
    const count = Array.isArray(refs) ? refs.length : 0;
    const taken: Ref[] = count > 0 ? new Array<Ref>(count) : [];
    // For an array, the ids go straight into the buffer the native call reads (its own, not
    // the core's shared one, which an element's getter could use meanwhile); up to a size
    // allocated up front without fear (a sparse array's length may be anything).
    const idBuffer = count > 0 && count <= idBufferMax ? new Float64Array(count) : undefined;
    // Otherwise room made up front too: growing it element by element cost a third of a
    // million-Ref release.
    const ids: ObjectId[] = count > 0 && idBuffer === undefined ? new Array<ObjectId>(count) : [];
    let length = 0;
    const take = (ref: unknown, index: number) => {
      if (!isRef(ref)) {
        throw new RefscopeError(
          "INVALID_ARGUMENT",
          `releaseAll: expected a Ref at index ${index}, got ${typeName(ref)}`,
        );
      }
      checkRef(ref, this.#core, "releaseAll");
      if (!refHeld(ref)) {
        throw new RefscopeError(
          "NO_REFERENCE",
          `releaseAll: the Ref to object ${ref.id} at index ${index} is already released or repeated`,
        );
      }
      setRefHeld(ref, false);
      taken[length] = ref;
      if (idBuffer !== undefined) idBuffer[length++] = ref.id;
      else ids[length++] = ref.id;
    };
    try {
      if (Array.isArray(refs)) {
        // The length read once: a getter on an element may change the array.
        for (let index = 0; index < count; index++) take(refs[index], index);
      } else {
        let index = 0;
        for (const ref of refs) take(ref, index++);
      }
      releaseQuietly(() => {
        if (idBuffer !== undefined) {
          this.#core.releaseBatchBuffer(idBuffer, length);
        } else {
          if (ids.length !== length) ids.length = length;
          this.#core.releaseBatch(ids);
        }
      });
    } catch (error) {
      for (let index = 0; index < length; index++) setRefHeld(taken[index], true);
      throw error;
    }
    const leaks = this.#core.leaks;
    if (leaks !== undefined) { for (let index = 0; index < length; index++) leaks.untrack(taken[index]); }
  }

  /** Adds one submitted-task reference per target (a task took them as arguments). */
  addSubmittedRefs(targets: Iterable<Target>): SubmittedRefs {
    const ids = this.#ids(targets, "addSubmittedRefs");
    this.#core.lease("submitted", true, ids);
    return new SubmittedRefs(constructing, this.#core, "submitted", ids);
  }

  /**
   * Runs `task` while holding a submitted-task reference on each target, removing them
   * when it settles (unless the counter was closed meanwhile).
   */
  async runTask<T>(targets: Iterable<Target>, task: () => T | Promise<T>): Promise<T> {
    if (typeof task !== "function") {
      throw new RefscopeError("INVALID_ARGUMENT", `runTask: the task must be a function, not ${typeName(task)}`);
    }
    const ids = this.#ids(targets, "runTask");
    this.#core.lease("submitted", true, ids);
    using _submitted = new SubmittedRefs(constructing, this.#core, "submitted", ids);
    return await task();
  }

  /**
   * Adds one lineage reference per target (a retryable task may still need them). A
   * reconstructable object then goes out of scope with its references but is kept until
   * the lineage references go; another object stays in scope.
   */
  addLineageRefs(targets: Iterable<Target>): LineageRefs {
    const ids = this.#ids(targets, "addLineageRefs");
    this.#core.lease("lineage", true, ids);
    return new LineageRefs(constructing, this.#core, "lineage", ids);
  }

  /** Live objects in the table. */
  get liveObjects(): number {
    return this.#core.stats().liveObjects;
  }

  /** Counter-wide figures; after close, the figures at close. */
  stats(): CounterStats {
    return this.#core.stats();
  }

  /**
   * Every live object with its counts by kind, owner, borrowers and pending handlers,
   * plus a summary: the data behind `formatSnapshot` (like `ray memory`).
   */
  snapshot(): Snapshot {
    return takeSnapshot(this.#core);
  }

  /**
   * Closes this thread's use of the counter. The thread that opened it closes the counter
   * itself: every live object goes out of scope, every pending handler runs, the native
   * dispatcher thread stops and memory is freed once every attached thread has closed
   * too. An attached thread's close releases everything it holds (the handlers on its own
   * objects fire now) and leaves the counter open. Later calls throw `CLOSED`; calling
   * close again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#core.close();
    const closing = this.#closing;
    // A close that failed before it began (the counter is still open) may be retried.
    closing.catch(() => {
      if (!this.closed) this.#closing = undefined;
    });
    return closing;
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #idOf(target: Target, what: string): ObjectId {
    if (typeof target === "number") return target;
    checkRef(target, this.#core, what);
    return target.id;
  }

  #ids(targets: Iterable<Target>, what: string): ObjectId[] {
    if (typeof targets !== "object" || targets === null || !(Symbol.iterator in targets)) {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `${what}: expected an iterable of Refs or ids, got ${typeName(targets)}`,
      );
    }
    return Array.from(targets, (target) => this.#idOf(target, what));
  }
}

/** The longest array whose ids `releaseAll` gathers in a buffer of its own (512 KiB). */
const idBufferMax = 65536;

function checkRef(ref: unknown, core: Core, what: string): asserts ref is Ref {
  if (!isRef(ref)) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: expected a Ref or an object id, got ${typeName(ref)}`);
  }
  if (refCore(ref) !== core) {
    throw new RefscopeError("INVALID_ID", `${what}: the Ref to object ${ref.id} belongs to another counter`);
  }
}

/** A thread's options, read and checked. */
interface ThreadOptions {
  readonly onHandlerError: CounterOptions["onHandlerError"];
  readonly leaks: { readonly stacks: boolean; readonly onLeak: LeakOptions["onLeak"] } | undefined;
  readonly timing: { readonly slowMs: number; readonly onSlow: HandlerTimingOptions["onSlow"] } | undefined;
}

/**
 * Reads and checks the counter options, each once (a getter may answer differently on a
 * second read): what is checked is what is used.
 */
function readOptions(options: unknown, what: string): ThreadOptions {
  checkObject(options, `${what}: options`);
  const { onHandlerError, leaks, handlerTiming } = options as CounterOptions;
  checkHook(onHandlerError, `${what}: onHandlerError`);
  return { onHandlerError, leaks: readLeakOptions(leaks, what), timing: readTimingOptions(handlerTiming, what) };
}

function readLeakOptions(leaks: unknown, what: string): ThreadOptions["leaks"] {
  if (leaks === undefined || leaks === false) return undefined;
  if (leaks === true) return { stacks: true, onLeak: undefined };
  checkObject(leaks, `${what}: leaks`, "true, false or an object");
  const { onLeak, stacks = true } = leaks as LeakOptions;
  checkHook(onLeak, `${what}: leaks.onLeak`);
  if (typeof stacks !== "boolean") {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: leaks.stacks must be a boolean, not ${typeName(stacks)}`);
  }
  return { stacks, onLeak };
}

function readTimingOptions(timing: unknown, what: string): ThreadOptions["timing"] {
  if (timing === undefined || timing === false) return undefined;
  if (timing === true) return { slowMs: defaultSlowMs, onSlow: undefined };
  checkObject(timing, `${what}: handlerTiming`, "true, false or an object");
  const { slowMs = defaultSlowMs, onSlow } = timing as HandlerTimingOptions;
  if (typeof slowMs !== "number" || !(slowMs >= 0) || slowMs === Infinity) {
    throw new RefscopeError(
      "INVALID_ARGUMENT",
      `${what}: handlerTiming.slowMs must be a finite number >= 0, not ${
        typeof slowMs === "number" ? slowMs : typeName(slowMs)
      }`,
    );
  }
  checkHook(onSlow, `${what}: handlerTiming.onSlow`);
  return { slowMs, onSlow };
}

/** Applies a thread's options to its core. */
function configure(core: Core, options: ThreadOptions): Core {
  core.delivery.onHandlerError = options.onHandlerError;
  const { leaks, timing } = options;
  if (timing !== undefined) core.delivery.timing = new HandlerTiming(timing.slowMs, timing.onSlow);
  if (leaks !== undefined) {
    const scope = { open: () => core.state === "open", sizeOf: (id: ObjectId) => sizeOf(core, id) };
    core.leaks = new LeakDetector(scope, leaks.stacks, leaks.onLeak);
  }
  return core;
}

/** An object's size for a leak report, or undefined if it is gone (or the counter is). */
function sizeOf(core: Core, id: ObjectId): number | undefined {
  try {
    return core.info(id)?.sizeBytes;
  } catch {
    return undefined;
  }
}

function checkObject(value: unknown, what: string, expected = "an object"): void {
  if (typeof value !== "object" || value === null) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what} must be ${expected}, not ${typeName(value)}`);
  }
}

/** Reads and checks `Ref.lend`'s options, each once; returns `reclaimAfterMs`. */
function readLendOptions(options: unknown): number | undefined {
  checkObject(options, "lend: options");
  const { reclaimAfterMs } = options as LendOptions;
  if (reclaimAfterMs === undefined) return undefined;
  if (
    typeof reclaimAfterMs !== "number" || !Number.isInteger(reclaimAfterMs) || reclaimAfterMs < 0 ||
    reclaimAfterMs >= 2 ** 31
  ) {
    throw new RefscopeError(
      "INVALID_ARGUMENT",
      `lend: reclaimAfterMs must be an integer in [0, 2^31), not ${
        typeof reclaimAfterMs === "number" ? reclaimAfterMs : typeName(reclaimAfterMs)
      }`,
    );
  }
  return reclaimAfterMs;
}

/**
 * Reclaims `lent` after `ms`, on this thread, unless it was borrowed first (then the
 * reclaim finds nothing). The timer does not keep the process alive.
 */
function reclaimLater(counter: Counter, lent: LentRef, ms: number): void {
  const timer = setTimeout(() => {
    try {
      counter.reclaim(lent);
    } catch (error) {
      // Only a native failure can reach here (out of memory, say): the lend stays charged.
      console.error(`refscope: reclaiming object ${lent.id} after ${ms} ms failed`, error);
    }
  }, ms);
  (timer as { unref?: () => void }).unref?.();
}

/**
 * Reads and checks a `LentRef`, each field once: what is checked is what is used. The
 * key must be this counter's.
 */
function readLent(lent: unknown, key: number, what: string): { id: ObjectId; lender: number; generation: number } {
  if (typeof lent !== "object" || lent === null) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: expected a LentRef from Ref.lend()`);
  }
  const { key: lentKey, id, lender, generation } = lent as LentRef;
  const valid = typeof id === "number" && typeof lender === "number" && typeof lentKey === "number" &&
    typeof generation === "number";
  if (!valid) throw new RefscopeError("INVALID_ARGUMENT", `${what}: expected a LentRef from Ref.lend()`);
  // A sink number crosses the FFI as a u32, which Deno refuses and Bun wraps when out of
  // range; `sinkNone` (2^32 - 1) would mean native code. Anything else is refused natively.
  if (!Number.isInteger(lender) || lender < 0 || lender >= sinkNone) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: the lender ${lender} is not a sink number`);
  }
  if (!Number.isInteger(generation) || generation < 0 || generation >= 2 ** 32) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: the generation ${generation} is not a lender's generation`);
  }
  if (lentKey !== key) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: the reference was lent by another counter (key ${lentKey})`);
  }
  // `+ 0` turns -0, which Deno's u32 conversion refuses, into 0.
  return { id, lender: lender + 0, generation: generation + 0 };
}

function checkHook(hook: unknown, what: string): void {
  if (hook !== undefined && typeof hook !== "function") {
    throw new RefscopeError("INVALID_ARGUMENT", `${what} must be a function or undefined, not ${typeName(hook)}`);
  }
}
