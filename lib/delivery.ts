/**
 * The JS end of a sink: the handler table, the drain, the wake, and event-loop liveness.
 *
 * A handler is registered natively as a token (an index into `#handlers`). When its object
 * goes out of scope, the token lands in the sink's outbox and this side learns it must
 * drain in one of these ways: the JS call that caused it returned `DRAIN`; or, on the
 * runtime's main thread, its waker thread called the wake (once per batch); or, in a
 * Worker, a message on refscope's `BroadcastChannel` named this sink. Tokens that this
 * thread's own call routed here are drained in a microtask queued by that call: after the
 * call returns, never inside it, and ahead of the macrotasks the application has queued
 * (under load, thousands). Tokens that other threads routed are drained in a later macrotask
 * (`setImmediate`). A drain copies up to `batchSize` tokens per FFI call into a preallocated
 * buffer and runs handlers for at most `turnMs`; then it yields to the event loop, so that
 * timers and I/O run, and goes on in a later macrotask.
 *
 * Why a Worker has no native wake: Deno and Bun free a Worker's isolate, and every FFI
 * callback it made, milliseconds before its OS thread exits, with no event that native
 * code (or, on Deno, JS) could see first. A native thread calling a Worker's callback could
 * always find it freed. (Node's wake is a libuv handle, and a Worker that ends holding a
 * handle Node does not know about aborts the process: see lib/ffi/node.ts.) So native code never calls into a Worker: a Worker's sink is
 * wake-less, and the wakes it is owed are *relayed* by a JS thread, which is alive by
 * definition while it runs: the thread whose call routed the tokens (its call returns
 * `RELAY`), or, for tokens that native threads routed (a Worker's thread-exit cleanup, a
 * native caller), the main thread, woken natively for the purpose. A message to a Worker
 * that has ended is dropped by the runtime. In a counter that no main thread takes part
 * in, a Worker with handlers pending also polls its sink every `pollMs`.
 *
 * Liveness: a scheduled drain is a microtask or an immediate, so it keeps the process alive
 * until it has run.
 * Tokens that arrive from a native thread while the loop is otherwise idle are caught by a
 * `beforeExit` check, which schedules a drain and so keeps the process alive until they
 * are delivered. An idle counter holds no timer and an unreferenced wake, so it does not.
 *
 * @module
 */
import process from "node:process";
import { clearInterval, setImmediate, setInterval } from "node:timers";
import type { HandlerTiming } from "./diagnostics.ts";
import { HandlerError } from "./errors.ts";
import type { ObjectId, OutOfScopeHandler } from "./types.ts";
import { type CallbackKind, Registration, Removal, SinkFlag, sinksMax, Status } from "./ffi/abi.gen.ts";
import { backend, type Channel, errorFromStatus, native, type Pointer, type Wake } from "./ffi/mod.ts";

/** Tokens copied per FFI call. */
const batchSize = 4096;
/**
 * How long one drain runs handlers before it yields to the event loop, in ms: the most a
 * burst delays a timer or I/O (bar one batch of slow handlers). Checked after each batch.
 */
const turnMs = 1;
/**
 * Handler slots kept when none is in use: above this, an idle sink drops its tables and
 * starts again small, so that a burst of handlers does not hold their memory for good.
 */
const idleSlotsKept = 4096;
/** How often a wake-less sink with handlers pending polls (see the module's comment). */
const pollMs = 10;
/** `REFSCOPE_SINK_RELAYS`: every JS sink relays the wakes its calls owe to Workers. */
const sinkRelays = SinkFlag.RELAYS;

const open = new Set<Delivery>();
let exitHooked = false;

function onBeforeExit(): void {
  for (const delivery of open) delivery.deliverPending();
}

/**
 * The main thread is ending, and the runtime will free its callbacks next: stop every
 * waker from starting another wake to it (a wake in progress is waited for if it cannot
 * block, else left to return).
 */
function onExit(): void {
  for (const delivery of open) delivery.stopWakes();
}

/** What a relay posts: a counter's key and the sinks whose owners must drain. */
interface Relayed {
  readonly key: number;
  readonly sinks: readonly number[];
}

let threadChannel: Channel | undefined;

/**
 * This thread's end of the process-wide channel that relayed wakes travel on: opened once
 * and never closed (Deno's BroadcastChannel loses its connection when a thread's last
 * channel closes while another is being opened), unreferenced, and listening only in a
 * Worker (the main thread is woken natively).
 */
function channel(): Channel {
  threadChannel ??= backend.isMainThread()
    ? backend.channel("refscope")
    : backend.channel("refscope", (data) => wakeRelayed(data as Relayed));
  return threadChannel;
}

/** Wakes this thread's sinks that `relayed` names. Anything else on the channel is ignored. */
function wakeRelayed(relayed: Relayed): void {
  if (typeof relayed !== "object" || relayed === null || !Array.isArray(relayed.sinks)) return;
  for (const delivery of open) {
    if (delivery.key === relayed.key && relayed.sinks.includes(delivery.sink)) delivery.onWake();
  }
}

/** Which callbacks: out-of-scope-or-freed, or reference-deleted (`REFSCOPE_ON_*`). */
export type CallbackKind = typeof CallbackKind[keyof typeof CallbackKind];

export class Delivery {
  readonly sink: number;
  /** The counter's key. */
  readonly key: number;
  /** Tells this sink apart from the slot's earlier participants (for `LentRef`). */
  readonly generation: number;
  #counter: Pointer;
  /** The native wake (main thread), or undefined for a wake-less sink (a Worker). */
  #wake: Wake | undefined;
  #relayed = new Uint32Array(sinksMax);
  #tokens = new Uint32Array(batchSize);
  /** The batch in `#tokens`: `#taken` tokens, of which those from `#next` on have yet to fire. */
  #taken = 0;
  #next = 0;
  #handlers: (OutOfScopeHandler | undefined)[] = [];
  #ids: ObjectId[] = [];
  /**
   * Free tokens below `#handlers.length`, a stack of `#freeCount`. Its room always covers
   * every slot, so that a drain frees tokens without growing anything.
   */
  #freeTokens = new Uint32Array(16);
  #freeCount = 0;
  /** A drain is queued as a microtask (this thread's own call routed tokens here). */
  #soon = false;
  /** A drain is queued as a macrotask. */
  #later = false;
  /** A drain is running: tokens that its handlers route here are taken by its next batch. */
  #draining = false;
  #closed = false;
  #poll: ReturnType<typeof setInterval> | undefined;
  handlersFired = 0;
  handlerErrors = 0;
  onHandlerError: ((error: HandlerError) => void) | undefined;
  /** Times handlers when the counter's options ask for it (`handlerTiming`). */
  timing: HandlerTiming | undefined;

  private constructor(counter: Pointer, key: number, sink: number, wake: Wake | undefined) {
    this.#counter = counter;
    this.key = key;
    this.sink = sink;
    this.#wake = wake;
    const cell = new Uint32Array(1);
    const status = native().symbols.refscope_sink_generation(counter, sink, cell);
    if (status < 0) throw errorFromStatus(status, "reading the sink's generation");
    this.generation = cell[0];
    open.add(this);
    if (!exitHooked) {
      process.on("beforeExit", onBeforeExit);
      process.on("exit", onExit);
      exitHooked = true;
    }
  }

  /** Opens a sink on a counter this thread opened. */
  static open(counter: Pointer): Delivery {
    const keyCell = new Float64Array(1);
    const keyStatus = native().symbols.refscope_counter_key(counter, keyCell);
    if (keyStatus < 0) throw errorFromStatus(keyStatus, "opening the counter's sink");
    const cell = new Uint32Array(1);
    const { wake, deliver } = openWithWake(
      "opening the counter's sink",
      (pointer, context) => native().symbols.refscope_sink_open(counter, pointer, context, sinkRelays, cell),
    );
    return deliver(new Delivery(counter, keyCell[0], cell[0], wake));
  }

  /** Attaches this thread to the counter registered under `key`, with a sink of its own. */
  static attach(key: number): { counter: Pointer; delivery: Delivery } {
    const counterCell = new BigUint64Array(1);
    const sinkCell = new Uint32Array(1);
    const { wake, deliver } = openWithWake(
      `attaching to counter ${key}`,
      (pointer, context) =>
        native().symbols.refscope_counter_attach(key, pointer, context, sinkRelays, counterCell, sinkCell),
    );
    const counter = backend.pointerFromCell(counterCell);
    return { counter, delivery: deliver(new Delivery(counter, key, sinkCell[0], wake)) };
  }

  /** Registers `handler`; true when it can still run (see `Counter.onOutOfScope`). */
  register(kind: CallbackKind, id: ObjectId, handler: OutOfScopeHandler): boolean {
    const reused = this.#freeCount > 0;
    const token = reused ? this.#freeTokens[--this.#freeCount] : this.#handlers.length;
    const status = native().symbols.refscope_object_on_sink(this.#counter, id, this.sink, kind, token);
    if (status !== Registration.REGISTERED) {
      if (reused) this.#freeCount++;
      if (status === Registration.REFUSED) return false;
      throw errorFromStatus(status, `registering a handler on object ${id}`);
    }
    if (!reused && token === this.#freeTokens.length) {
      // A new slot: the free stack's room grows with the slots, here, not in a drain.
      const grown = new Uint32Array(this.#freeTokens.length * 2);
      grown.set(this.#freeTokens.subarray(0, this.#freeCount));
      this.#freeTokens = grown;
    }
    this.#handlers[token] = handler;
    this.#ids[token] = id;
    this.#pollWhilePending();
    return true;
  }

  /** Removes the first registration of `handler` on the object; true if it had not fired. */
  unregister(kind: CallbackKind, id: ObjectId, handler: OutOfScopeHandler): boolean {
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
      if (status === Removal.NOT_REMOVED) return false;
      this.#free(token);
      this.#shrinkIfIdle();
      return true;
    }
    return false;
  }

  /** Handler slots allocated (in use or free): what the handler tables hold room for. */
  get handlerSlots(): number {
    return this.#handlers.length;
  }

  /**
   * With no handler registered (so no token is held natively, or waiting in the outbox),
   * drops tables grown beyond `idleSlotsKept`: every token is free, and numbering starts
   * again from 0.
   */
  #shrinkIfIdle(): void {
    if (this.#handlers.length <= idleSlotsKept || this.handlersPending !== 0) return;
    this.#handlers = [];
    this.#ids = [];
    this.#freeTokens = new Uint32Array(16);
    this.#freeCount = 0;
  }

  /** Handlers registered and not yet run (or removed). */
  get handlersPending(): number {
    return this.#handlers.length - this.#freeCount;
  }

  #free(token: number): void {
    this.#handlers[token] = undefined;
    this.#freeTokens[this.#freeCount++] = token;
  }

  /**
   * A wake: from the sink's waker thread (main thread; Bun may deliver one queued before
   * close), or a relayed one naming this sink (a Worker).
   */
  onWake(): void {
    if (!this.#closed) this.schedule();
  }

  /**
   * Passes on the wakes owed to wake-less sinks (Workers): after a call that returned
   * `RELAY`, and, on the main thread, after each drain that emptied its sink (it is woken
   * for exactly this). A Worker that has ended never receives the message.
   */
  relay(): void {
    if (this.#closed) return;
    const count = native().symbols.refscope_relay_take(this.#counter, this.#relayed, sinksMax);
    if (count <= 0) {
      if (count < 0) throw errorFromStatus(count, "relaying wakes");
      return;
    }
    const relayed: Relayed = { key: this.key, sinks: Array.from(this.#relayed.subarray(0, count)) };
    // A channel never hears its own messages: this thread's own sinks are woken here.
    wakeRelayed(relayed);
    channel().post(relayed);
  }

  /**
   * A wake-less sink polls while handlers are pending, for the wakes that native threads
   * owe it when no main thread relays them (a counter only Workers take part in).
   */
  #pollWhilePending(): void {
    if (this.#wake !== undefined || this.#poll !== undefined || this.#closed) return;
    this.#poll = setInterval(() => {
      if (this.#closed || this.handlersPending === 0) return this.#stopPolling();
      this.deliverPending();
    }, pollMs);
    (this.#poll as { unref?: () => void }).unref?.();
  }

  #stopPolling(): void {
    if (this.#poll === undefined) return;
    clearInterval(this.#poll);
    this.#poll = undefined;
  }

  /**
   * The main thread is ending: no wake may start after this (its callback is about to
   * be freed). Closes the sink natively. A wake in progress that cannot block (Bun's,
   * Node's: they only queue) ends within microseconds, and is waited for, a second at
   * most; a Deno one waits for this very thread, so it is left to return. Then the wake
   * lets go of what it holds in the runtime (Node's libuv handle, which Node would
   * otherwise dispatch while it tears the thread's JS down).
   */
  stopWakes(): void {
    const wake = this.#wake;
    if (wake === undefined || this.#closed) return;
    this.detach();
    const symbols = native().symbols;
    let status = symbols.refscope_sink_close(this.#counter, this.sink);
    const deadline = performance.now() + 1000;
    while (status === Status.PENDING && !wake.blocks && performance.now() < deadline) {
      status = symbols.refscope_sink_close(this.#counter, this.sink);
    }
    wake.exit();
  }

  /**
   * Arranges a drain in a later macrotask, once: `setImmediate`, which runs after the
   * current task and its microtasks, about 1 µs later on an idle loop, where
   * `setTimeout(0)` waits 1 ms (Bun) to 2 ms (Deno). Pending, it keeps the process alive.
   */
  schedule(): void {
    if (this.#later || this.#draining) return;
    this.#later = true;
    setImmediate(this.#onImmediate);
  }

  /**
   * Arranges a drain in a microtask, once: for tokens that this thread's own call routed
   * here. It runs once the calling code returns to the event loop or awaits, before any
   * macrotask: a handler does not wait behind the application's queued work.
   */
  scheduleSoon(): void {
    if (this.#soon || this.#draining) return;
    this.#soon = true;
    queueMicrotask(this.#onMicrotask);
  }

  #onImmediate = (): void => {
    this.#later = false;
    this.#drainTurn();
  };

  #onMicrotask = (): void => {
    this.#soon = false;
    this.#drainTurn();
  };

  /** Schedules a drain if tokens are waiting (before the process would exit). */
  deliverPending(): void {
    if (this.#closed) return;
    if (this.#next < this.#taken || native().symbols.refscope_sink_pending(this.#counter, this.sink) > 0) {
      this.schedule();
    }
  }

  /**
   * Runs the handlers of one batch of waiting tokens, or of what is left of the last batch;
   * returns false when the outbox is empty. Past `deadline` (checked every 256 handlers), it
   * stops and keeps the rest of the batch for the next call. Must be called from a microtask
   * or a macrotask, never from inside a mutating call.
   */
  drainOnce(deadline = Infinity): boolean {
    if (this.#closed) return false; // The native counter may already be destroyed.
    if (this.#next === this.#taken) {
      const count = native().symbols.refscope_sink_drain(this.#counter, this.sink, this.#tokens, batchSize);
      if (count <= 0) {
        if (count < 0) throw errorFromStatus(count, `draining sink ${this.sink}`);
        // Empty, and disarmed: a sink with a wake (the main thread's) may have been woken to
        // relay. A wake-less one never is: native code arms only sinks with a wake.
        if (this.#wake !== undefined) this.relay();
        this.#shrinkIfIdle();
        return false;
      }
      this.#next = 0;
      this.#taken = count;
    }
    const tokens = this.#tokens;
    const timing = this.timing;
    if (timing === undefined) {
      while (this.#next < this.#taken) {
        this.#fire(tokens[this.#next++]);
        if ((this.#next & 255) === 0 && performance.now() >= deadline) break;
      }
    } else {
      // One clock read per handler: each run ends where the next begins.
      let now = performance.now();
      while (this.#next < this.#taken) {
        now = this.#fireTimed(tokens[this.#next++], timing, now);
        if (now >= deadline) break;
      }
    }
    return true;
  }

  /**
   * Drains batch after batch until the sink is empty or `turnMs` has passed; then more may
   * be waiting, and the sink stays armed (no wake will come): it goes on in a macrotask.
   */
  #drainTurn(): void {
    if (this.#closed || this.#draining) return;
    const deadline = performance.now() + turnMs;
    this.#draining = true;
    try {
      do {
        if (!this.drainOnce(deadline)) return;
      } while (performance.now() < deadline);
    } finally {
      this.#draining = false;
    }
    this.schedule();
  }

  #fire(token: number): void {
    const handler = this.#handlers[token]!;
    const id = this.#ids[token];
    this.#free(token);
    this.handlersFired++;
    try {
      whenSettled(handler(id), undefined, (error) => this.#report(id, error));
    } catch (error) {
      this.#report(id, error);
    }
  }

  /** `#fire`, timing the handler from `start`; returns the time it returned. */
  #fireTimed(token: number, timing: HandlerTiming, start: number): number {
    const handler = this.#handlers[token]!;
    const id = this.#ids[token];
    this.#free(token);
    this.handlersFired++;
    let value: unknown;
    try {
      value = handler(id);
    } catch (error) {
      this.#report(id, error);
    }
    const now = performance.now();
    timing.record(id, handler, now - start);
    if ((typeof value === "object" || typeof value === "function") && value !== null) {
      try {
        let done = false;
        let stopWatching: (() => void) | undefined;
        const settled = () => {
          done = true;
          stopWatching?.();
        };
        const thenable = whenSettled(value, settled, (error) => {
          settled();
          this.#report(id, error);
        });
        // Watched only if it did not settle at once (a thenable may call back synchronously).
        if (thenable && !done) stopWatching = timing.watch(id, handler, start);
      } catch (error) {
        this.#report(id, error);
      }
    }
    return now;
  }

  /** Reports a handler's failure; never throws (the rest of the batch must still run). */
  #report(id: ObjectId, cause: unknown): void {
    this.handlerErrors++;
    const error = new HandlerError(id, cause);
    const hook = this.onHandlerError;
    if (hook !== undefined) {
      const hookFailed = (hookError: unknown) =>
        log(`refscope: the onHandlerError hook threw while reporting: ${error.message}`, hookError);
      try {
        // An async hook (assignable to the hook's type) may reject: log it like a throw,
        // rather than leave an unhandled rejection, which ends the process on Deno.
        whenSettled(hook(error), undefined, hookFailed);
      } catch (hookError) {
        hookFailed(hookError);
      }
      return;
    }
    log(`refscope: ${error.message}`, cause);
  }

  /** Stops draining: the native sink is closing or closed, and may be gone. */
  detach(): void {
    this.#closed = true;
    this.#stopPolling();
    open.delete(this);
  }

  /** Frees the wake; only once no native thread can call it any more. */
  closeWake(): void {
    this.detach();
    this.#wake?.close();
  }
}

/**
 * Subscribes to `value` if it is a thenable: a promise of this realm or of another
 * (`instanceof Promise` fails across realms), or any object with a `then` method. `then` is
 * read once and called at once, so a rejection is handled before it could be reported as
 * unhandled. Returns whether it was a thenable. Throws what reading or calling `then` throws.
 */
function whenSettled(
  value: unknown,
  onFulfilled: (() => void) | undefined,
  onRejected: (reason: unknown) => void,
): boolean {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return false;
  const then = (value as { then?: unknown }).then;
  if (typeof then !== "function") return false;
  then.call(value, onFulfilled, onRejected);
  return true;
}

/**
 * `console.error`, which must not throw: a console may fail to show a value (Deno's throws
 * on a revoked Proxy), and the value is then left out.
 */
function log(message: string, value: unknown): void {
  try {
    console.error(message, value);
  } catch {
    try {
      console.error(`${message} (the value could not be shown)`);
    } catch { /* The console itself fails: nothing is left to tell. */ }
  }
}

/**
 * Opens a sink with `open` (a sink open or an attach), passing it this thread's wake, made
 * first because native code needs its pointer to open the sink: a native one on the main
 * thread; none in a Worker, whose thread channel listens instead, from before the sink
 * exists, so that no wake relayed to it can be missed. A failed open closes the wake and
 * throws. `deliver` connects the wake to the `Delivery` once there is one.
 */
function openWithWake(
  what: string,
  open: (wake: Pointer | null, context: Pointer | null) => number,
): { wake: Wake | undefined; deliver: (delivery: Delivery) => Delivery } {
  let target: Delivery | undefined;
  channel();
  const wake = backend.isMainThread() ? backend.wake(() => target?.onWake(), native().path) : undefined;
  const status = open(wake?.pointer ?? null, wake?.context ?? null);
  if (status < 0) {
    wake?.close();
    throw errorFromStatus(status, what);
  }
  return {
    wake,
    deliver: (delivery) => {
      target = delivery;
      return delivery;
    },
  };
}
