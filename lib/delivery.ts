/**
 * The JS end of a sink: the handler table, the drain, and event-loop liveness.
 *
 * A handler is registered natively as a token (an index into `#handlers`). When its object
 * goes out of scope, the token lands in the sink's outbox and this side learns it must
 * drain in one of two ways: the JS call that caused it returned `DRAIN`, or the dispatcher
 * thread called the wake (once per batch). Either way the drain runs in a later macrotask,
 * never inside the call that released the object, and copies up to `batchSize` tokens per
 * FFI call into a preallocated buffer.
 *
 * Liveness: a scheduled drain is a timer, so it keeps the process alive until it has run.
 * Tokens that arrive from a native thread while the loop is otherwise idle are caught by a
 * `beforeExit` check, which schedules a drain and so keeps the process alive until they
 * are delivered. An idle counter holds no timer and an unreferenced wake, so it does not.
 *
 * @module
 */
import process from "node:process";
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
  handlersFired = 0;
  handlerErrors = 0;
  onHandlerError: ((error: HandlerError) => void) | undefined;

  /** Opens a sink on `counter`; throws with the native status on failure. */
  constructor(counter: Pointer) {
    this.#counter = counter;
    this.#wake = backend.wake(() => {
      // Bun may deliver a wake queued before close; after close there is nothing to do.
      if (!this.#closed) this.schedule();
    });
    const cell = new Uint32Array(1);
    const status = native().symbols.refscope_sink_open(counter, this.#wake.pointer, null, cell);
    if (status < 0) {
      this.#wake.close();
      throw errorFromStatus(status, "opening the counter's sink");
    }
    this.sink = cell[0];
    open.add(this);
    if (!beforeExitHooked) {
      process.on("beforeExit", onBeforeExit);
      beforeExitHooked = true;
    }
  }

  /** Registers `handler`; true when the object is live and not freed. */
  register(id: ObjectId, handler: OutOfScopeHandler): boolean {
    const token = this.#freeTokens.length > 0 ? this.#freeTokens.pop()! : this.#handlers.length;
    const status = native().symbols.refscope_object_on_out_of_scope_sink(this.#counter, id, this.sink, token);
    if (status !== 1) {
      if (token !== this.#handlers.length) this.#freeTokens.push(token);
      if (status === 0) return false;
      throw errorFromStatus(status, `registering a handler on object ${id}`);
    }
    this.#handlers[token] = handler;
    this.#ids[token] = id;
    return true;
  }

  /** Handlers registered and not yet run. */
  get handlersPending(): number {
    return this.#handlers.length - this.#freeTokens.length;
  }

  /** Arranges a drain in a later macrotask, once. */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => this.#drainTurn(), 0);
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
      try {
        hook(error);
        return;
      } catch (hookError) {
        console.error(`refscope: the onHandlerError hook threw while reporting: ${error.message}`, hookError);
        return;
      }
    }
    console.error(`refscope: ${error.message}`, cause);
  }

  /** Stops reacting to wakes and frees the wake; only once no native thread can call it. */
  close(): void {
    this.#closed = true;
    this.#wake.close();
    open.delete(this);
  }
}
