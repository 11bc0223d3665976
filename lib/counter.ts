/**
 * The public API: a `Counter` of owned objects, `Ref` handles that each hold one local
 * reference, and `SubmittedRefs` leases that hold submitted-task references.
 *
 * @module
 */
import { Delivery, type OutOfScopeHandler } from "./delivery.ts";
import { errorFromStatus, type HandlerError, type ObjectId, RefscopeError, Status } from "./errors.ts";
import { backend, native, type Pointer } from "./ffi/mod.ts";

export type { OutOfScopeHandler };

/** `REFSCOPE_STATE_CLOSED`: the dispatcher thread has exited. */
const stateClosed = 2;
/** How often `close` polls for the dispatcher to finish its queue and exit. */
const closePollMs = 1;

/** Options for `new Counter()`. */
export interface CounterOptions {
  /** Receives every error thrown (or rejected) by an out-of-scope handler. */
  onHandlerError?: (error: HandlerError) => void;
}

/** Options for `Counter.create`. */
export interface CreateOptions {
  /** The object's size, for accounting: an integer in [0, 2^53). Default 0. */
  sizeBytes?: number;
}

/** A snapshot of one live object. */
export interface ObjectInfo {
  /** The object's id. */
  readonly id: ObjectId;
  /** Local references (held by `Ref`s). */
  readonly localRefs: number;
  /** Submitted-task references (held by `SubmittedRefs`). */
  readonly submittedRefs: number;
  /** Out-of-scope callbacks registered and not yet handed over. */
  readonly pendingCallbacks: number;
  /** Created by this counter. */
  readonly owned: boolean;
  /** Explicitly freed: its handlers have fired; the entry lives until its references drop. */
  readonly freed: boolean;
  /** The size given at creation. */
  readonly sizeBytes: number;
}

/** Counter-wide figures. */
export interface CounterStats {
  /** Objects in the table (in scope, or freed with references left). */
  readonly liveObjects: number;
  /** The sum of the live objects' sizes. */
  readonly liveBytes: number;
  /** Objects ever created. */
  readonly objectsCreated: number;
  /** Out-of-scope callbacks ever registered. */
  readonly callbacksRegistered: number;
  /** Callbacks that left the table (fired, or waiting to be delivered). */
  readonly callbacksReleased: number;
  /** Deliveries waiting for the JS thread to drain them. */
  readonly pendingDeliveries: number;
  /** JS handlers registered and not yet run. */
  readonly pendingHandlers: number;
  /** JS handlers that have run. */
  readonly handlersFired: number;
  /** Handlers that threw or rejected. */
  readonly handlerErrors: number;
  /** Coalesced wakes the dispatcher thread sent to this JS thread. */
  readonly wakesSent: number;
}

/** Something that names an object: a `Ref` or a raw id. */
export type Target = Ref | ObjectId;

/** The native counter and everything a `Ref` needs from it. Not exported from `mod.ts`. */
class Core {
  readonly pointer: Pointer;
  readonly delivery: Delivery;
  state: "open" | "closing" | "closed" = "open";
  readonly #symbols = native().symbols;
  readonly #id = new Float64Array(1);
  #ids = new Float64Array(64);
  readonly #info = new Uint32Array(6);
  readonly #stats = new Uint32Array(18);
  #finalStats: CounterStats | undefined;

  constructor() {
    const cell = new BigUint64Array(1);
    const symbols = this.#symbols;
    const status = symbols.refscope_counter_open(cell);
    if (status < 0) throw errorFromStatus(status, "opening a counter");
    this.pointer = backend.pointerFromCell(cell);
    try {
      this.delivery = new Delivery(this.pointer);
    } catch (error) {
      symbols.refscope_counter_destroy(this.pointer);
      throw error;
    }
  }

  checkOpen(what: string): void {
    if (this.state !== "open") throw new RefscopeError("CLOSED", `${what}: the counter is closed`);
  }

  /** Acts on a mutation's status: schedules a drain, or throws for an error. */
  settle(status: number, what: string, id?: ObjectId): void {
    if (status === Status.DRAIN) {
      this.delivery.schedule();
    } else if (status < 0) {
      throw errorFromStatus(status, id === undefined ? what : `${what} object ${id}`);
    }
  }

  create(sizeBytes: number): ObjectId {
    this.checkOpen("create");
    const status = this.#symbols.refscope_object_create(this.pointer, sizeBytes, this.#id);
    if (status < 0) throw errorFromStatus(status, `create (sizeBytes ${sizeBytes})`);
    return this.#id[0];
  }

  retain(id: ObjectId): void {
    this.checkOpen("retain");
    const status = this.#symbols.refscope_object_retain(this.pointer, id);
    if (status < 0) throw errorFromStatus(status, `retain object ${id}`);
  }

  release(id: ObjectId): void {
    this.checkOpen("release");
    const status = this.#symbols.refscope_object_release(this.pointer, id, this.delivery.sink);
    if (status !== Status.OK) this.settle(status, "release", id);
  }

  /** Copies ids into the reusable batch buffer, growing it when needed. */
  batch(ids: readonly ObjectId[]): Float64Array {
    if (ids.length > this.#ids.length) this.#ids = new Float64Array(Math.max(ids.length, this.#ids.length * 2));
    const buffer = this.#ids;
    for (let index = 0; index < ids.length; index++) buffer[index] = ids[index];
    return buffer;
  }

  releaseBatch(ids: readonly ObjectId[]): void {
    this.checkOpen("release");
    const status = this.#symbols.refscope_object_release_batch(
      this.pointer,
      this.batch(ids),
      ids.length,
      this.delivery.sink,
    );
    if (status !== Status.OK) this.settle(status, `release of ${ids.length} objects`);
  }

  submittedAdd(ids: readonly ObjectId[]): void {
    this.checkOpen("add submitted refs");
    const status = this.#symbols.refscope_submitted_add(this.pointer, this.batch(ids), ids.length);
    if (status < 0) throw errorFromStatus(status, `add submitted refs to ${ids.length} objects`);
  }

  submittedRemove(ids: readonly ObjectId[]): void {
    this.checkOpen("remove submitted refs");
    const status = this.#symbols.refscope_submitted_remove(
      this.pointer,
      this.batch(ids),
      ids.length,
      this.delivery.sink,
    );
    if (status !== Status.OK) this.settle(status, `remove submitted refs from ${ids.length} objects`);
  }

  free(id: ObjectId): void {
    this.checkOpen("free");
    const status = this.#symbols.refscope_object_free(this.pointer, id, this.delivery.sink);
    if (status !== Status.OK) this.settle(status, "free", id);
  }

  register(id: ObjectId, handler: OutOfScopeHandler): boolean {
    this.checkOpen("onOutOfScope");
    if (typeof handler !== "function") {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `onOutOfScope: the handler must be a function, not ${typeName(handler)}`,
      );
    }
    return this.delivery.register(id, handler);
  }

  info(id: ObjectId): ObjectInfo | undefined {
    this.checkOpen("info");
    const info = this.#info;
    const status = this.#symbols.refscope_object_info(this.pointer, id, info);
    if (status === Status.STALE_ID) return undefined;
    if (status < 0) throw errorFromStatus(status, `info of object ${id}`);
    return {
      id,
      localRefs: info[0],
      submittedRefs: info[1],
      pendingCallbacks: info[2],
      owned: (info[3] & 1) !== 0,
      freed: (info[3] & 2) !== 0,
      sizeBytes: info[4] + info[5] * 2 ** 32,
    };
  }

  stats(): CounterStats {
    if (this.#finalStats !== undefined) return this.#finalStats;
    const raw = this.#stats;
    const status = this.#symbols.refscope_counter_stats(this.pointer, raw);
    if (status < 0) throw errorFromStatus(status, "stats");
    const u64 = (index: number) => raw[2 * index] + raw[2 * index + 1] * 2 ** 32;
    const delivery = this.delivery;
    return {
      liveObjects: u64(0),
      liveBytes: u64(1),
      objectsCreated: u64(2),
      callbacksRegistered: u64(3),
      callbacksReleased: u64(4),
      pendingDeliveries: u64(7),
      pendingHandlers: delivery.handlersPending,
      handlersFired: delivery.handlersFired,
      handlerErrors: delivery.handlerErrors,
      wakesSent: u64(8),
    };
  }

  /**
   * Closes natively (every live object goes out of scope), delivers every handler, waits
   * for the dispatcher thread to exit, then destroys the counter. The join happens only
   * once the dispatcher has exited, so it never waits on a thread that is blocked in a
   * wake to this JS thread (the Deno hazard).
   */
  async close(): Promise<void> {
    this.checkOpen("close");
    const symbols = this.#symbols;
    const status = symbols.refscope_counter_close(this.pointer, this.delivery.sink);
    if (status < 0) throw errorFromStatus(status, "close");
    this.state = "closing";
    // Handlers never run inside the call that released their object, close included.
    await sleep(0);
    // Every token was queued by the native close (mutations are refused since), so once the
    // outbox is empty only the dispatcher's exit is awaited.
    while (this.delivery.drainOnce()) { /* run every handler that is waiting */ }
    while (symbols.refscope_counter_state(this.pointer) !== stateClosed) await sleep(closePollMs);
    this.#finalStats = this.stats();
    this.delivery.close();
    const destroyed = symbols.refscope_counter_destroy(this.pointer);
    this.state = "closed";
    if (destroyed < 0) throw errorFromStatus(destroyed, "destroy");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The native counter behind `counter`, for librefscope_testkit in tests and benchmarks.
 * Not exported from `mod.ts`.
 *
 * @internal
 */
export function nativeCounter(counter: Counter): Pointer {
  return counterCore(counter).pointer;
}

let counterCore: (counter: Counter) => Core;

function checkRef(ref: unknown, core: Core, what: string): asserts ref is Ref {
  if (!(ref instanceof Ref)) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: expected a Ref or an object id, got ${typeName(ref)}`);
  }
  if (refCore(ref) !== core) {
    throw new RefscopeError("INVALID_ID", `${what}: the Ref to object ${ref.id} belongs to another counter`);
  }
}

function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

// Module-private access to a Ref's state, for the counter's batch operations.
let refCore: (ref: Ref) => Core;
let refHeld: (ref: Ref) => boolean;
let setRefHeld: (ref: Ref, held: boolean) => void;
const constructing = Symbol("refscope.constructing");

/**
 * One local reference to an object. `release()` (or leaving a `using` block) drops it;
 * `retain()` returns another, independent one.
 */
export class Ref implements Disposable {
  /** The object's id. */
  readonly id: ObjectId;
  /** The counter that owns the object. */
  readonly counter: Counter;
  #core: Core;
  #held = true;

  static {
    refCore = (ref) => ref.#core;
    refHeld = (ref) => ref.#held;
    setRefHeld = (ref, held) => {
      ref.#held = held;
    };
  }

  /** Refs come from `Counter.create` and `Ref.retain`; this constructor is not public. */
  constructor(key: typeof constructing, counter: Counter, core: Core, id: ObjectId) {
    if (key !== constructing) throw new TypeError("Ref is not constructible; use Counter.create or Ref.retain");
    this.counter = counter;
    this.#core = core;
    this.id = id;
  }

  /** True once this reference has been released. */
  get released(): boolean {
    return !this.#held;
  }

  /** Adds a local reference and returns it as a new `Ref`. */
  retain(): Ref {
    this.#checkHeld("retain");
    this.#core.retain(this.id);
    return new Ref(constructing, this.counter, this.#core, this.id);
  }

  /** Drops this reference. Releasing the same `Ref` twice throws `NO_REFERENCE`. */
  release(): void {
    this.#checkHeld("release");
    this.#core.release(this.id);
    this.#held = false;
  }

  /** Releases if still held and the counter is open; otherwise does nothing. */
  [Symbol.dispose](): void {
    if (this.#held && this.#core.state === "open") this.release();
  }

  /** Same as `counter.onOutOfScope(this, handler)`. */
  onOutOfScope(handler: OutOfScopeHandler): boolean {
    return this.counter.onOutOfScope(this, handler);
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

/** Submitted-task references held on a set of objects until released (once). */
export class SubmittedRefs implements Disposable {
  /** The objects, one reference each (an id may repeat). */
  readonly ids: readonly ObjectId[];
  #core: Core;
  #held = true;

  /** Leases come from `Counter.addSubmittedRefs`; this constructor is not public. */
  constructor(key: typeof constructing, core: Core, ids: readonly ObjectId[]) {
    if (key !== constructing) throw new TypeError("SubmittedRefs is not constructible; use Counter.addSubmittedRefs");
    this.#core = core;
    this.ids = ids;
  }

  /** True once released. */
  get released(): boolean {
    return !this.#held;
  }

  /** Removes the references (the task finished). Twice throws `NO_REFERENCE`. */
  release(): void {
    if (!this.#held) throw new RefscopeError("NO_REFERENCE", "release: these submitted refs were already released");
    this.#core.submittedRemove(this.ids);
    this.#held = false;
  }

  /** Releases if still held and the counter is open; otherwise does nothing. */
  [Symbol.dispose](): void {
    if (this.#held && this.#core.state === "open") this.release();
  }
}

/**
 * A reference counter with out-of-scope notifications, backed by librefscope.
 *
 * Objects live in a native table. An object is in scope while it has local references
 * (`Ref`s) or submitted-task references (`SubmittedRefs`); when the last one is dropped,
 * from JS or from any native thread, its handlers run on this JS thread, in registration
 * order, exactly once, after the releasing call has returned.
 */
export class Counter implements AsyncDisposable {
  #core: Core;
  #closing: Promise<void> | undefined;

  static {
    counterCore = (counter) => counter.#core;
  }

  /** Opens a counter (starting its native dispatcher thread). */
  constructor(options: CounterOptions = {}) {
    this.#core = new Core();
    this.#core.delivery.onHandlerError = options.onHandlerError;
  }

  /** Receives errors from handlers; when unset they are logged with `console.error`. */
  get onHandlerError(): ((error: HandlerError) => void) | undefined {
    return this.#core.delivery.onHandlerError;
  }

  set onHandlerError(hook: ((error: HandlerError) => void) | undefined) {
    this.#core.delivery.onHandlerError = hook;
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#core.state !== "open";
  }

  /** Creates an owned object holding one local reference, returned as a `Ref`. */
  create(options: CreateOptions = {}): Ref {
    const sizeBytes = options.sizeBytes ?? 0;
    if (typeof sizeBytes !== "number") {
      throw new RefscopeError("INVALID_ARGUMENT", `create: sizeBytes must be a number, not ${typeName(sizeBytes)}`);
    }
    return new Ref(constructing, this, this.#core, this.#core.create(sizeBytes));
  }

  /**
   * Registers `handler` to run once the object is out of scope or freed. Returns false,
   * registering nothing, when the object has already been deleted or freed (as Ray does).
   */
  onOutOfScope(target: Target, handler: OutOfScopeHandler): boolean {
    return this.#core.register(this.#idOf(target, "onOutOfScope"), handler);
  }

  /**
   * Frees the object now: its handlers fire (once in total) and later registrations are
   * refused. Its entry stays, and its ids keep working, until its references drop.
   */
  free(target: Target): void {
    this.#core.free(this.#idOf(target, "free"));
  }

  /** A snapshot of the object, or undefined once it has been deleted. */
  info(target: Target): ObjectInfo | undefined {
    return this.#core.info(this.#idOf(target, "info"));
  }

  /**
   * Releases many `Ref`s in one native call. All or nothing: if any is foreign, already
   * released or repeated, nothing is released and a `RefscopeError` is thrown.
   */
  releaseAll(refs: Iterable<Ref>): void {
    this.#core.checkOpen("releaseAll");
    const list = Array.isArray(refs) ? refs as Ref[] : [...refs];
    const ids: ObjectId[] = new Array(list.length);
    let index = 0;
    try {
      for (; index < list.length; index++) {
        const ref = list[index];
        checkRef(ref, this.#core, "releaseAll");
        if (!refHeld(ref)) {
          throw new RefscopeError(
            "NO_REFERENCE",
            `releaseAll: the Ref to object ${ref.id} at index ${index} is already released or repeated`,
          );
        }
        setRefHeld(ref, false);
        ids[index] = ref.id;
      }
      this.#core.releaseBatch(ids);
    } catch (error) {
      for (let undo = 0; undo < index; undo++) setRefHeld(list[undo], true);
      throw error;
    }
  }

  /** Adds one submitted-task reference per target (a task took them as arguments). */
  addSubmittedRefs(targets: Iterable<Target>): SubmittedRefs {
    const ids = Array.from(targets, (target) => this.#idOf(target, "addSubmittedRefs"));
    this.#core.submittedAdd(ids);
    return new SubmittedRefs(constructing, this.#core, ids);
  }

  /**
   * Runs `task` while holding a submitted-task reference on each target, removing them
   * when it settles (unless the counter was closed meanwhile).
   */
  async runTask<T>(targets: Iterable<Target>, task: () => T | Promise<T>): Promise<T> {
    using _submitted = this.addSubmittedRefs(targets);
    return await task();
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
   * Closes the counter: every live object goes out of scope, every pending handler runs,
   * the native dispatcher thread stops, and native memory is freed. Later calls throw
   * `CLOSED`; calling close again returns the same promise.
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
}
