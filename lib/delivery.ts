/**
 * The JS end of a sink: the handler table, the drain, and event-loop liveness.
 *
 * A handler is registered natively as a token (an index into `#handlers`). When its object
 * goes out of scope, the token lands in the sink's outbox and this side learns it must
 * drain in one of two ways: the JS call that caused it returned `DRAIN`, or the dispatcher
 * thread called the wake (once per batch). Either way the drain runs in a later macrotask
 * (`setImmediate`),
 * never inside the call that released the object, and copies up to `batchSize` tokens per
 * FFI call into a preallocated buffer.
 *
 * Liveness: a scheduled drain is an immediate, so it keeps the process alive until it has run.
 * Tokens that arrive from a native thread while the loop is otherwise idle are caught by a
 * `beforeExit` check, which schedules a drain and so keeps the process alive until they
 * are delivered. An idle counter holds no timer and an unreferenced wake, so it does not.
 *
 * @module
 */
import process from "node:process";
import { setImmediate } from "node:timers";
import { errorFromStatus, HandlerError, RefscopeError } from "./errors.ts";
import type { ObjectId } from "./errors.ts";
import { backend, native, type Pointer, type Wake } from "./ffi/mod.ts";

/** Called with the object's id once it is out of scope or freed. */
export type OutOfScopeHandler = (id: ObjectId) => void | Promise<void>;

/** Tokens copied per FFI call. */
const batchSize = 4096;
/** Drain calls per macrotask before yielding to the event loop (about 1M deliveries). */
const batchesPerTurn = 256;

const open = new Set<Delivery>();
let beforeExitHooked = false;

function onBeforeExit(): void {
  for (const delivery of open) delivery.deliverPending();
}

/** Which handlers: out-of-scope-or-freed, or reference-deleted (`REFSCOPE_ON_*`). */
export const enum HandlerKind {
  OutOfScope = 0,
  Deleted = 1,
}

export class Delivery {
  readonly sink: number;
  #counter: Pointer;
  #wake: Wake;
  #tokens = new Uint32Array(batchSize);
  #handlers: (OutOfScopeHandler | undefined)[] = [];
  #ids: ObjectId[] = [];
  #freeTokens: number[] = [];
  #scheduled = false;
  #closed = false;
  #ignoreWakes = false;
  handlersFired = 0;
  handlerErrors = 0;
  onHandlerError: ((error: HandlerError) => void) | undefined;

  private constructor(counter: Pointer, sink: number, wake: Wake) {
    this.#counter = counter;
    this.sink = sink;
    this.#wake = wake;
    open.add(this);
    if (!beforeExitHooked) {
      process.on("beforeExit", onBeforeExit);
      beforeExitHooked = true;
    }
  }

  /** Opens a sink on a counter this thread opened. */
  static open(counter: Pointer): Delivery {
    const { wake, deliver } = makeWake();
    const cell = new Uint32Array(1);
    const status = native().symbols.refscope_sink_open(counter, wake.pointer, null, cell);
    if (status < 0) {
      wake.close();
      throw errorFromStatus(status, "opening the counter's sink");
    }
    return deliver(new Delivery(counter, cell[0], wake));
  }

  /** Attaches this thread to the counter registered under `key`, with a sink of its own. */
  static attach(key: number): { counter: Pointer; delivery: Delivery } {
    const { wake, deliver } = makeWake();
    const counterCell = new BigUint64Array(1);
    const sinkCell = new Uint32Array(1);
    const status = native().symbols.refscope_counter_attach(key, wake.pointer, null, counterCell, sinkCell);
    if (status < 0) {
      wake.close();
      throw errorFromStatus(status, `attaching to counter ${key}`);
    }
    const counter = backend.pointerFromCell(counterCell);
    return { counter, delivery: deliver(new Delivery(counter, sinkCell[0], wake)) };
  }

  /** Registers `handler`; true when it can still run (see `Counter.onOutOfScope`). */
  register(kind: HandlerKind, id: ObjectId, handler: OutOfScopeHandler): boolean {
    const token = this.#freeTokens.length > 0 ? this.#freeTokens.pop()! : this.#handlers.length;
    const status = native().symbols.refscope_object_on_sink(this.#counter, id, this.sink, kind, token);
    if (status !== 1) {
      if (token !== this.#handlers.length) this.#freeTokens.push(token);
      if (status === 0) return false;
      throw errorFromStatus(status, `registering a handler on object ${id}`);
    }
    this.#handlers[token] = handler;
    this.#ids[token] = id;
    return true;
  }

  /** Removes the first registration of `handler` on the object; true if it had not fired. */
  unregister(kind: HandlerKind, id: ObjectId, handler: OutOfScopeHandler): boolean {
    const symbols = native().symbols;
    let tokens = new Uint32Array(16);
    let count = symbols.refscope_object_sink_tokens(this.#counter, id, this.sink, kind, tokens, tokens.length);
    if (count > tokens.length) {
      tokens = new Uint32Array(count);
      count = symbols.refscope_object_sink_tokens(this.#counter, id, this.sink, kind, tokens, tokens.length);
    }
    if (count < 0) throw errorFromStatus(count, `removing a handler from object ${id}`);
    for (const token of tokens.subarray(0, count)) {
      if (this.#handlers[token] !== handler) continue;
      const status = symbols.refscope_object_off_sink(this.#counter, id, this.sink, kind, token);
      if (status < 0) throw errorFromStatus(status, `removing a handler from object ${id}`);
      if (status === 0) return false;
      this.#handlers[token] = undefined;
      this.#freeTokens.push(token);
      return true;
    }
    return false;
  }

  /** Handlers registered and not yet run (or removed). */
  get handlersPending(): number {
    return this.#handlers.length - this.#freeTokens.length;
  }

  /** A wake from the sink's waker thread. Bun may deliver one queued before close. */
  onWake(): void {
    if (!this.#closed && !this.#ignoreWakes) this.schedule();
  }

  /** Test hook: behave as if every wake were lost (see `simulateLostWakes`). */
  loseWakes(): void {
    this.#ignoreWakes = true;
  }

  /**
   * Arranges a drain in a later macrotask, once: `setImmediate`, which runs after the
   * current task and its microtasks, about 1 µs later on both runtimes, where
   * `setTimeout(0)` waits 1 ms (Bun) to 2 ms (Deno). Pending, it keeps the process alive.
   */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#drainTurn());
  }

  /** Schedules a drain if tokens are waiting (before the process would exit). */
  deliverPending(): void {
    if (this.#closed) return;
    if (native().symbols.refscope_sink_pending(this.#counter, this.sink) > 0) this.schedule();
  }

  /**
   * Runs handlers for every waiting token; returns false when the outbox is empty. Must be
   * called from a macrotask, never from inside a mutating call.
   */
  drainOnce(): boolean {
    if (this.#closed) return false; // The native counter may already be destroyed.
    const count = native().symbols.refscope_sink_drain(this.#counter, this.sink, this.#tokens, batchSize);
    if (count <= 0) {
      if (count < 0) throw new RefscopeError("INVALID_ARGUMENT", `draining sink ${this.sink} failed (${count})`);
      return false;
    }
    const tokens = this.#tokens;
    for (let index = 0; index < count; index++) this.#fire(tokens[index]);
    return true;
  }

  #drainTurn(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    for (let batch = 0; batch < batchesPerTurn; batch++) {
      if (!this.drainOnce()) return;
    }
    // More may be waiting, and the sink stays armed (no wake will come): continue later.
    this.schedule();
  }

  #fire(token: number): void {
    const handler = this.#handlers[token]!;
    const id = this.#ids[token];
    this.#handlers[token] = undefined;
    this.#freeTokens.push(token);
    this.handlersFired++;
    try {
      const result = handler(id);
      if (result instanceof Promise) result.catch((error: unknown) => this.#report(id, error));
    } catch (error) {
      this.#report(id, error);
    }
  }

  #report(id: ObjectId, cause: unknown): void {
    this.handlerErrors++;
    const error = new HandlerError(id, cause);
    const hook = this.onHandlerError;
    if (hook !== undefined) {
      const hookFailed = (hookError: unknown) =>
        console.error(`refscope: the onHandlerError hook threw while reporting: ${error.message}`, hookError);
      try {
        // An async hook (assignable to the hook's type) may reject: log it like a throw,
        // rather than leave an unhandled rejection, which ends the process on Deno.
        const result: unknown = hook(error);
        if (result instanceof Promise) result.catch(hookFailed);
      } catch (hookError) {
        hookFailed(hookError);
      }
      return;
    }
    console.error(`refscope: ${error.message}`, cause);
  }

  /** Stops draining: the native sink is closing or closed, and may be gone. */
  detach(): void {
    this.#closed = true;
    open.delete(this);
  }

  /** Frees the wake; only once no native thread can call it any more. */
  closeWake(): void {
    this.detach();
    this.#wake.close();
  }
}

/**
 * Makes the wake before the sink exists (native code needs its pointer to open the sink);
 * `deliver` connects it to the `Delivery` once there is one.
 */
function makeWake(): { wake: Wake; deliver: (delivery: Delivery) => Delivery } {
  let target: Delivery | undefined;
  const wake = backend.wake(() => target?.onWake());
  return {
    wake,
    deliver: (delivery) => {
      target = delivery;
      return delivery;
    },
  };
}
