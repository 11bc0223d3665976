/**
 * The native counter as seen from one JS thread: every FFI call of the public API, its
 * buffers, its status handling, and the two close protocols. Not exported from `mod.ts`.
 *
 * @module
 */
import { Delivery, HandlerKind, type OutOfScopeHandler } from "./delivery.ts";
import { errorFromStatus, type ObjectId, Outcome, RefscopeError, Status } from "./errors.ts";
import { backend, native, type Pointer } from "./ffi/mod.ts";

/** A participant of a counter: a sink (one JS thread), native code, or an owner that left. */
export type Participant = number | "native" | "gone";

/** A snapshot of one object. */
export interface ObjectInfo {
  /** The object's id. */
  readonly id: ObjectId;
  /** The participant that created it. */
  readonly owner: Participant;
  /** Whether this counter (this JS thread) owns it. */
  readonly owned: boolean;
  /** The owner's local references (its `Ref`s). */
  readonly localRefs: number;
  /** The owner's submitted-task references. */
  readonly submittedRefs: number;
  /** Borrowers' local and submitted-task references. */
  readonly borrowedRefs: number;
  /** How many participants other than the owner hold references. */
  readonly borrowers: number;
  /** References lent (`Ref.lend`) and not yet borrowed. */
  readonly lentRefs: number;
  /** Lineage references: explicit pins, and objects whose lineage depends on it. */
  readonly lineageRefs: number;
  /** Owned containers in scope that contain it. */
  readonly containedIn: number;
  /** Out-of-scope handlers registered and not yet run. */
  readonly pendingCallbacks: number;
  /** Reference-deleted handlers registered and not yet run. */
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

/** One participant's references on an object, besides the owner's local and submitted. */
export interface Holding {
  /** Who holds them. */
  readonly participant: Participant;
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
  /** Callbacks ever registered, by every participant. */
  readonly callbacksRegistered: number;
  /** Callbacks that left the table (fired, or waiting to be delivered). */
  readonly callbacksReleased: number;
  /** Deliveries waiting, in every participant's outbox. */
  readonly pendingDeliveries: number;
  /** This thread's handlers registered and not yet run. */
  readonly pendingHandlers: number;
  /** This thread's handlers that have run. */
  readonly handlersFired: number;
  /** This thread's handlers that threw or rejected. */
  readonly handlerErrors: number;
  /** Coalesced wakes the dispatcher thread sent (to every participant). */
  readonly wakesSent: number;
  /** Participants (JS threads) attached. */
  readonly participants: number;
  /** Deliveries dropped because their participant had gone (its thread exited). */
  readonly deliveriesDiscarded: number;
  /** Native bytes allocated for the table's entries and callbacks (capacity, not use). */
  readonly nativeBytes: number;
  /**
   * Waker threads let go while inside a wake that has not returned (their participant's
   * thread ended meanwhile); each keeps only the counter's memory until it returns.
   */
  readonly wakersBlocked: number;
}

const sinkNone = 0xffffffff;
const ownerGone = 0xfffffffe;
/** `REFSCOPE_STATE_CLOSED`: the dispatcher thread has exited. */
const stateClosed = 2;
/** How often a close polls for the dispatcher (or an in-flight wake) to finish. */
const closePollMs = 1;
/** `refscope_info` is 64 bytes: a double, a u64, then twelve u32. */
const infoBytes = 64;
const snapshotPage = 256;
const createReconstructable = 1;

function participant(raw: number): Participant {
  return raw === sinkNone ? "native" : raw === ownerGone ? "gone" : raw;
}

/** The native counter behind one `Counter`: opened here, or attached to by key. */
export class Core {
  readonly pointer: Pointer;
  readonly delivery: Delivery;
  /** "opener": this thread opened the native counter; "attached": it attached by key. */
  readonly role: "opener" | "attached";
  state: "open" | "closing" | "closed" = "open";
  readonly #symbols = native().symbols;
  readonly #id = new Float64Array(1);
  #ids = new Float64Array(64);
  readonly #record = new ArrayBuffer(infoBytes * snapshotPage);
  readonly #recordF64 = new Float64Array(this.#record);
  readonly #recordU32 = new Uint32Array(this.#record);
  readonly #stats = new Uint32Array(26);
  #finalStats: CounterStats | undefined;

  /** The key other threads attach with; read once, as the native counter may go later. */
  readonly key: number;

  private constructor(pointer: Pointer, delivery: Delivery, role: "opener" | "attached") {
    this.pointer = pointer;
    this.delivery = delivery;
    this.role = role;
    const status = this.#symbols.refscope_counter_key(pointer, this.#id);
    if (status < 0) throw errorFromStatus(status, "key");
    this.key = this.#id[0];
  }

  static open(): Core {
    const symbols = native().symbols;
    const cell = new BigUint64Array(1);
    const status = symbols.refscope_counter_open(cell);
    if (status < 0) throw errorFromStatus(status, "opening a counter");
    const pointer = backend.pointerFromCell(cell);
    try {
      // A counter opened by a Worker ends with it: if its thread exits first (terminated,
      // say), the native side closes and destroys the counter for it.
      const bound = symbols.refscope_counter_destroy_on_thread_exit(pointer);
      if (bound < 0) throw errorFromStatus(bound, "opening a counter");
      return new Core(pointer, Delivery.open(pointer), "opener");
    } catch (error) {
      symbols.refscope_counter_destroy(pointer);
      throw error;
    }
  }

  static attach(key: number): Core {
    if (typeof key !== "number") {
      throw new RefscopeError("INVALID_ARGUMENT", `attach: the key must be a number, not ${typeof key}`);
    }
    const { counter, delivery } = Delivery.attach(key);
    return new Core(counter, delivery, "attached");
  }

  /** This thread's participant number (its sink). */
  get sink(): number {
    return this.delivery.sink;
  }

  checkOpen(what: string): void {
    if (this.state !== "open") throw new RefscopeError("CLOSED", `${what}: the counter is closed`);
  }

  /**
   * Acts on a mutation's status: schedules a drain of this thread's sink, relays the wakes
   * owed to Workers, or throws for an error.
   */
  settle(status: number, what: string, id?: ObjectId): void {
    if (status < 0) throw errorFromStatus(status, id === undefined ? what : `${what} object ${id}`);
    if ((status & Outcome.DRAIN) !== 0) this.delivery.schedule();
    if ((status & Outcome.RELAY) !== 0) this.delivery.relay();
  }

  create(
    sizeBytes: number,
    reconstructable: boolean,
    contains: readonly ObjectId[],
    lineage: readonly ObjectId[],
  ): ObjectId {
    this.checkOpen("create");
    const symbols = this.#symbols;
    let status: number;
    if (contains.length === 0 && lineage.length === 0 && !reconstructable) {
      status = symbols.refscope_object_create(this.pointer, sizeBytes, this.sink, this.#id);
    } else {
      const both = this.batch([...contains, ...lineage]);
      status = symbols.refscope_object_create_ex(
        this.pointer,
        sizeBytes,
        reconstructable ? createReconstructable : 0,
        both,
        contains.length,
        both.subarray(contains.length),
        lineage.length,
        this.sink,
        this.#id,
      );
    }
    if (status < 0) throw errorFromStatus(status, `create (sizeBytes ${sizeBytes})`);
    return this.#id[0];
  }

  retain(id: ObjectId): void {
    this.checkOpen("retain");
    const status = this.#symbols.refscope_object_retain(this.pointer, id, this.sink);
    if (status < 0) throw errorFromStatus(status, `retain object ${id}`);
  }

  release(id: ObjectId): void {
    this.checkOpen("release");
    const status = this.#symbols.refscope_object_release(this.pointer, id, this.sink);
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
    const status = this.#symbols.refscope_object_release_batch(this.pointer, this.batch(ids), ids.length, this.sink);
    if (status !== Status.OK) this.settle(status, `release of ${ids.length} objects`);
  }

  /** Adds (`add`) or removes references of a kind that leases hold, one per id. */
  lease(kind: "submitted" | "lineage", add: boolean, ids: readonly ObjectId[]): void {
    const what = `${add ? "add" : "remove"} ${kind} refs ${add ? "to" : "from"} ${ids.length} objects`;
    this.checkOpen(what);
    const symbols = this.#symbols;
    const call = kind === "submitted"
      ? (add ? symbols.refscope_submitted_add : symbols.refscope_submitted_remove)
      : (add ? symbols.refscope_lineage_add : symbols.refscope_lineage_remove);
    const status = call(this.pointer, this.batch(ids), ids.length, this.sink);
    if (status !== Status.OK) this.settle(status, what);
  }

  lend(id: ObjectId): void {
    this.checkOpen("lend");
    const status = this.#symbols.refscope_object_lend(this.pointer, id, this.sink);
    if (status < 0) throw errorFromStatus(status, `lend object ${id}`);
  }

  borrow(id: ObjectId, lender: number, generation: number): void {
    this.checkOpen("borrow");
    const status = this.#symbols.refscope_object_borrow(this.pointer, id, lender, generation, this.sink);
    if (status < 0) throw errorFromStatus(status, `borrow object ${id} from participant ${lender}`);
  }

  free(id: ObjectId): void {
    this.checkOpen("free");
    const status = this.#symbols.refscope_object_free(this.pointer, id, this.sink);
    if (status !== Status.OK) this.settle(status, "free", id);
  }

  register(kind: HandlerKind, id: ObjectId, handler: OutOfScopeHandler, what: string): boolean {
    this.checkOpen(what);
    checkHandler(handler, what);
    return this.delivery.register(kind, id, handler);
  }

  unregister(kind: HandlerKind, id: ObjectId, handler: OutOfScopeHandler, what: string): boolean {
    this.checkOpen(what);
    checkHandler(handler, what);
    return this.delivery.unregister(kind, id, handler);
  }

  info(id: ObjectId): ObjectInfo | undefined {
    this.checkOpen("info");
    const status = this.#symbols.refscope_object_info(this.pointer, id, this.#recordU32);
    if (status === Status.STALE_ID) return undefined;
    if (status < 0) throw errorFromStatus(status, `info of object ${id}`);
    return this.#readInfo(0);
  }

  #readInfo(index: number): ObjectInfo {
    const u32 = this.#recordU32;
    const base = index * (infoBytes / 4);
    const owner = participant(u32[base + 4]);
    const flags = u32[base + 5];
    return {
      id: this.#recordF64[index * (infoBytes / 8)],
      owner,
      owned: owner === this.sink,
      localRefs: u32[base + 6],
      submittedRefs: u32[base + 7],
      borrowedRefs: u32[base + 8],
      lentRefs: u32[base + 9],
      lineageRefs: u32[base + 10],
      containedIn: u32[base + 11],
      borrowers: u32[base + 12],
      pendingCallbacks: u32[base + 13],
      pendingDeletedCallbacks: u32[base + 14],
      freed: (flags & 1) !== 0,
      outOfScope: (flags & 2) !== 0,
      reconstructable: (flags & 4) !== 0,
      sizeBytes: u32[base + 2] + u32[base + 3] * 2 ** 32,
    };
  }

  holdings(id: ObjectId): Holding[] {
    this.checkOpen("holdings");
    const symbols = this.#symbols;
    let buffer = new Uint32Array(5 * 8);
    let count = symbols.refscope_object_holdings(this.pointer, id, buffer, buffer.length / 5);
    if (count > buffer.length / 5) {
      buffer = new Uint32Array(5 * count);
      count = symbols.refscope_object_holdings(this.pointer, id, buffer, count);
    }
    if (count === Status.STALE_ID) return [];
    if (count < 0) throw errorFromStatus(count, `holdings of object ${id}`);
    return Array.from({ length: count }, (_, index) => ({
      participant: participant(buffer[5 * index]),
      localRefs: buffer[5 * index + 1],
      submittedRefs: buffer[5 * index + 2],
      lentRefs: buffer[5 * index + 3],
      lineageRefs: buffer[5 * index + 4],
    }));
  }

  /** Every live object, page by page (each page consistent, the whole not atomic). */
  objects(): ObjectInfo[] {
    this.checkOpen("snapshot");
    const symbols = this.#symbols;
    const next = new Uint32Array(1);
    const found: ObjectInfo[] = [];
    let start = 0;
    while (true) {
      const count = symbols.refscope_counter_snapshot(this.pointer, start, this.#recordU32, snapshotPage, next);
      if (count < 0) throw errorFromStatus(count, "snapshot");
      for (let index = 0; index < count; index++) found.push(this.#readInfo(index));
      if (count < snapshotPage) return found;
      start = next[0];
    }
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
      participants: u64(9),
      deliveriesDiscarded: u64(10),
      nativeBytes: u64(11),
      wakersBlocked: u64(12),
    };
  }

  /**
   * The opener's close: closes the native counter (every live object goes out of scope),
   * delivers this thread's handlers, waits for the dispatcher thread to exit, then closes
   * its sink and destroys the counter. The join happens only once the dispatcher has
   * exited, so it never waits on a thread blocked in a wake to this JS thread (the Deno
   * hazard). Other participants' sinks keep the memory until they close.
   */
  async close(): Promise<void> {
    if (this.role === "attached") return await this.#leave();
    this.checkOpen("close");
    const symbols = this.#symbols;
    const status = symbols.refscope_counter_close(this.pointer, this.sink);
    if (status < 0) throw errorFromStatus(status, "close");
    this.state = "closing";
    // Workers' handlers fire too: they are woken through the channel, never natively.
    if ((status & Outcome.RELAY) !== 0) this.delivery.relay();
    // Handlers never run inside the call that released their object, close included.
    await sleep(0);
    // Every token was queued by the native close (mutations are refused since), so once
    // the outbox is empty only the dispatcher's exit is awaited.
    while (this.delivery.drainOnce()) { /* run every handler that is waiting */ }
    while (symbols.refscope_counter_state(this.pointer) !== stateClosed) await sleep(closePollMs);
    this.#finalStats = this.stats();
    await this.#closeSink();
    const destroyed = symbols.refscope_counter_destroy(this.pointer);
    this.state = "closed";
    if (destroyed < 0) throw errorFromStatus(destroyed, "destroy");
  }

  /**
   * An attached thread's close: releases everything it holds (its handlers on objects it
   * owns fire now), delivers its handlers, then closes its sink. The counter stays open
   * for everyone else.
   */
  async #leave(): Promise<void> {
    this.checkOpen("close");
    const status = this.#symbols.refscope_sink_release(this.pointer, this.sink);
    if (status < 0) throw errorFromStatus(status, "close");
    this.state = "closing";
    if ((status & Outcome.RELAY) !== 0) this.delivery.relay();
    await sleep(0);
    while (this.delivery.drainOnce()) { /* run every handler that is waiting */ }
    this.#finalStats = this.stats();
    await this.#closeSink();
    this.state = "closed";
  }

  /**
   * Closes this thread's sink, waiting (without blocking the event loop) for a wake still
   * in flight to finish: a Deno wake waits for this very thread. Only then may the wake
   * callback be freed. The native counter may be freed by this close.
   */
  async #closeSink(): Promise<void> {
    while (true) {
      const status = this.#symbols.refscope_sink_close(this.pointer, this.sink);
      if (status === Status.OK) break;
      if (status !== Status.PENDING) throw errorFromStatus(status, "closing the sink");
      this.delivery.detach();
      await sleep(closePollMs);
    }
    this.delivery.closeWake();
  }
}

function checkHandler(handler: unknown, what: string): asserts handler is OutOfScopeHandler {
  if (typeof handler !== "function") {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: the handler must be a function, not ${typeName(handler)}`);
  }
}

export function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export { HandlerKind };
