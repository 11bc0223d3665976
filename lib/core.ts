/**
 * The native counter as seen from one JS thread: every FFI call of the public API, its
 * buffers, its status handling, and the two close protocols. Not exported from `mod.ts`.
 *
 * @module
 */
import { type CallbackKind, Delivery } from "./delivery.ts";
import type { LeakDetector } from "./diagnostics.ts";
import { RefscopeError, typeName } from "./errors.ts";
import {
  CounterState,
  CreateFlag,
  Hint,
  HintBit,
  Holding as HoldingLayout,
  Info,
  ObjectFlag,
  ownerGone,
  sinkNone,
  Stats,
  Status,
} from "./ffi/abi.gen.ts";
import { backend, errorFromStatus, native, type Pointer } from "./ffi/mod.ts";
import type { CounterStats, Holding, ObjectId, ObjectInfo, OutOfScopeHandler, Sink } from "./types.ts";

/** How often a close polls for the dispatcher (or an in-flight wake) to finish. */
const closePollMs = 1;
/** Records per `refscope_counter_snapshot` call. */
const snapshotPage = 256;

function sinkOf(raw: number): Sink {
  return raw === sinkNone ? "native" : raw === ownerGone ? "gone" : raw;
}

/** A `u32` field's index in a `Uint32Array` over the struct. */
function u32At(field: { offset: number }): number {
  return field.offset / 4;
}

/** Reads a `u64` field (a count or byte size, below 2^53) as a number. */
function u64At(words: Uint32Array, base: number, field: { offset: number }): number {
  const index = base + field.offset / 4;
  return words[index] + words[index + 1] * 2 ** 32;
}

/** The native counter behind one `Counter`: opened here, or attached to by key. */
export class Core {
  readonly pointer: Pointer;
  readonly delivery: Delivery;
  /** "opener": this thread opened the native counter; "attached": it attached by key. */
  readonly role: "opener" | "attached";
  state: "open" | "closing" | "closed" = "open";
  /** Watches this thread's `Ref`s and leases when the counter's options ask for it (`leaks`). */
  leaks: LeakDetector | undefined;
  readonly #symbols = native().symbols;
  /** The counter's address for the all-doubles calls, where they are the faster ones (Node, Deno). */
  readonly #address: number | undefined;
  readonly #id = new Float64Array(1);
  #ids = new Float64Array(64);
  readonly #record = new ArrayBuffer(Info.bytes * snapshotPage);
  readonly #recordF64 = new Float64Array(this.#record);
  readonly #recordU32 = new Uint32Array(this.#record);
  readonly #stats = new Uint32Array(Stats.bytes / 4);
  #finalStats: CounterStats | undefined;

  /** The key other threads attach with; read once, as the native counter may go later. */
  readonly key: number;

  private constructor(pointer: Pointer, delivery: Delivery, role: "opener" | "attached") {
    this.pointer = pointer;
    this.#address = backend.numericAddress(pointer);
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

  /** This thread's sink number. */
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
    if ((status & HintBit.DRAIN) !== 0) this.delivery.scheduleSoon();
    if ((status & HintBit.RELAY) !== 0) this.delivery.relay();
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
    const address = this.#address;
    const plain = contains.length === 0 && lineage.length === 0 && !reconstructable;
    if (plain && address !== undefined) {
      const id = symbols.refscope_object_create_n(address, sizeBytes, this.sink);
      if (id < 0) throw errorFromStatus(id, `create (sizeBytes ${sizeBytes})`);
      return id;
    } else if (plain) {
      status = symbols.refscope_object_create(this.pointer, sizeBytes, this.sink, this.#id);
    } else {
      const both = this.batch([...contains, ...lineage]);
      status = symbols.refscope_object_create_ex(
        this.pointer,
        sizeBytes,
        reconstructable ? CreateFlag.RECONSTRUCTABLE : 0,
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
    const address = this.#address;
    const status = address === undefined
      ? this.#symbols.refscope_object_retain(this.pointer, id, this.sink)
      : this.#symbols.refscope_object_retain_n(address, id, this.sink);
    if (status < 0) throw errorFromStatus(status, `retain object ${id}`);
  }

  release(id: ObjectId): void {
    this.checkOpen("release");
    const address = this.#address;
    const status = address === undefined
      ? this.#symbols.refscope_object_release(this.pointer, id, this.sink)
      : this.#symbols.refscope_object_release_n(address, id, this.sink);
    if (status !== Hint.NONE) this.settle(status, "release", id);
  }

  /** Copies ids into the reusable batch buffer, growing it when needed. */
  batch(ids: readonly ObjectId[]): Float64Array {
    if (ids.length > this.#ids.length) this.#ids = new Float64Array(Math.max(ids.length, this.#ids.length * 2));
    const buffer = this.#ids;
    for (let index = 0; index < ids.length; index++) buffer[index] = ids[index];
    return buffer;
  }

  releaseBatch(ids: readonly ObjectId[]): void {
    this.releaseBatchBuffer(this.batch(ids), ids.length);
  }

  /** Releases the first `length` ids of `buffer` in one call (the caller's own buffer). */
  releaseBatchBuffer(buffer: Float64Array, length: number): void {
    this.checkOpen("release");
    const status = this.#symbols.refscope_object_release_batch(this.pointer, buffer, length, this.sink);
    if (status !== Hint.NONE) this.settle(status, `release of ${length} objects`);
  }

  /** Adds (`add`) or removes references of a kind that leases hold, one per id. */
  lease(kind: "submitted" | "lineage", add: boolean, ids: readonly ObjectId[]): void {
    const what = `${add ? "add" : "remove"} ${kind} refs ${add ? "to" : "from"} ${ids.length} objects`;
    this.checkOpen(what);
    const symbols = this.#symbols;
    const call = kind === "submitted"
      ? (add ? symbols.refscope_submitted_add : symbols.refscope_submitted_remove)
      : (add ? symbols.refscope_lineage_add : symbols.refscope_lineage_remove);
    // Adding answers a status (OK), removing a hint: `settle` reads either, since OK has no
    // hint bits.
    this.settle(call(this.pointer, this.batch(ids), ids.length, this.sink), what);
  }

  lend(id: ObjectId): void {
    this.checkOpen("lend");
    const status = this.#symbols.refscope_object_lend(this.pointer, id, this.sink);
    if (status < 0) throw errorFromStatus(status, `lend object ${id}`);
  }

  borrow(id: ObjectId, lender: number, generation: number): void {
    this.checkOpen("borrow");
    const status = this.#symbols.refscope_object_borrow(this.pointer, id, lender, generation, this.sink);
    if (status < 0) throw errorFromStatus(status, `borrow object ${id} from sink ${lender}`);
  }

  /**
   * The lender takes back its own unclaimed lend (a borrow from itself) and releases it:
   * false when there was none left to take.
   */
  reclaim(id: ObjectId, lender: number, generation: number): boolean {
    this.checkOpen("reclaim");
    const status = this.#symbols.refscope_object_borrow(this.pointer, id, lender, generation, this.sink);
    if (status === Status.NO_REFERENCE || status === Status.STALE_ID) return false;
    if (status < 0) throw errorFromStatus(status, `reclaim object ${id}`);
    this.release(id);
    return true;
  }

  free(id: ObjectId): void {
    this.checkOpen("free");
    const status = this.#symbols.refscope_object_free(this.pointer, id, this.sink);
    if (status !== Hint.NONE) this.settle(status, "free", id);
  }

  register(kind: CallbackKind, id: ObjectId, handler: OutOfScopeHandler, what: string): boolean {
    this.checkOpen(what);
    checkHandler(handler, what);
    return this.delivery.register(kind, id, handler);
  }

  unregister(kind: CallbackKind, id: ObjectId, handler: OutOfScopeHandler, what: string): boolean {
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
    const base = index * (Info.bytes / 4);
    const owner = sinkOf(u32[base + u32At(Info.owner)]);
    const flags = u32[base + u32At(Info.flags)];
    return {
      id: this.#recordF64[(index * Info.bytes + Info.id.offset) / 8],
      owner,
      owned: owner === this.sink,
      localRefs: u32[base + u32At(Info.refs_local)],
      submittedRefs: u32[base + u32At(Info.refs_submitted)],
      borrowedRefs: u32[base + u32At(Info.refs_borrowed)],
      lentRefs: u32[base + u32At(Info.refs_lent)],
      lineageRefs: u32[base + u32At(Info.refs_lineage)],
      containedIn: u32[base + u32At(Info.contained_in_owned)],
      borrowers: u32[base + u32At(Info.borrowers)],
      pendingCallbacks: u32[base + u32At(Info.callbacks_pending)],
      pendingDeletedCallbacks: u32[base + u32At(Info.deleted_callbacks_pending)],
      freed: (flags & ObjectFlag.FREED) !== 0,
      outOfScope: (flags & ObjectFlag.OUT_OF_SCOPE) !== 0,
      reconstructable: (flags & ObjectFlag.RECONSTRUCTABLE) !== 0,
      sizeBytes: u64At(u32, base, Info.size_bytes),
    };
  }

  holdings(id: ObjectId): Holding[] {
    this.checkOpen("holdings");
    const symbols = this.#symbols;
    const words = HoldingLayout.bytes / 4;
    let buffer = new Uint32Array(words * 8);
    let count = symbols.refscope_object_holdings(this.pointer, id, buffer, buffer.length / words);
    if (count > buffer.length / words) {
      buffer = new Uint32Array(words * count);
      count = symbols.refscope_object_holdings(this.pointer, id, buffer, count);
    }
    if (count === Status.STALE_ID) return [];
    if (count < 0) throw errorFromStatus(count, `holdings of object ${id}`);
    return Array.from({ length: count }, (_, index) => {
      const base = words * index;
      return {
        sink: sinkOf(buffer[base + u32At(HoldingLayout.sink)]),
        localRefs: buffer[base + u32At(HoldingLayout.refs_local)],
        submittedRefs: buffer[base + u32At(HoldingLayout.refs_submitted)],
        lentRefs: buffer[base + u32At(HoldingLayout.refs_lent)],
        lineageRefs: buffer[base + u32At(HoldingLayout.refs_lineage)],
      };
    });
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
    const delivery = this.delivery;
    return {
      liveObjects: u64At(raw, 0, Stats.objects_live),
      liveBytes: u64At(raw, 0, Stats.bytes_live),
      objectsCreated: u64At(raw, 0, Stats.objects_created),
      callbacksRegistered: u64At(raw, 0, Stats.callbacks_registered),
      callbacksReleased: u64At(raw, 0, Stats.callbacks_released),
      pendingTokens: u64At(raw, 0, Stats.sink_tokens_pending),
      pendingHandlers: delivery.handlersPending,
      handlersFired: delivery.handlersFired,
      handlerErrors: delivery.handlerErrors,
      wakesSent: u64At(raw, 0, Stats.wakes_sent),
      openSinks: u64At(raw, 0, Stats.sinks_open),
      discardedTokens: u64At(raw, 0, Stats.tokens_discarded),
      memoryBytes: u64At(raw, 0, Stats.memory_bytes),
      wakersBlocked: u64At(raw, 0, Stats.wakers_blocked),
      handlerTimes: delivery.timing?.figures(),
    };
  }

  /**
   * The opener's close: closes the native counter (every live object goes out of scope),
   * delivers this thread's handlers, waits for the dispatcher thread to exit, then closes
   * its sink and destroys the counter. The join happens only once the dispatcher has
   * exited, so it never waits on a thread blocked in a wake to this JS thread (the Deno
   * hazard). Other threads' sinks keep the memory until they close.
   */
  async close(): Promise<void> {
    if (this.role === "attached") return await this.#leave();
    this.checkOpen("close");
    const symbols = this.#symbols;
    const status = symbols.refscope_counter_close(this.pointer, this.sink);
    if (status < 0) throw errorFromStatus(status, "close");
    this.state = "closing";
    // Workers' handlers fire too: they are woken through the channel, never natively.
    if ((status & HintBit.RELAY) !== 0) this.delivery.relay();
    // Handlers never run inside the call that released their object, close included.
    await sleep(0);
    // Every token was queued by the native close (mutations are refused since), so once
    // the outbox is empty only the dispatcher's exit is awaited.
    while (this.delivery.drainOnce()) { /* run every handler that is waiting */ }
    while (symbols.refscope_counter_state(this.pointer) !== CounterState.CLOSED) await sleep(closePollMs);
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
    if ((status & HintBit.RELAY) !== 0) this.delivery.relay();
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
