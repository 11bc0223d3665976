/**
 * Opt-in diagnostics of one JS thread's use of a counter: leak detection (a `Ref` or lease
 * garbage-collected while it still held references) and handler timing (how long handlers
 * run, and which are slow). Both are off unless `CounterOptions` asks for them, and cost
 * nothing but a field's check when off.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { clearTimeout, setTimeout } from "node:timers";
import { describe } from "./errors.ts";
import type { HandlerTimes, Leak, ObjectId, OutOfScopeHandler, SlowHandler } from "./types.ts";

/** What the leak registry keeps for a handle: never the handle itself, which it watches. */
interface Held {
  readonly kind: Leak["kind"];
  readonly ids: readonly ObjectId[];
  readonly stack: string | undefined;
}

/** What a detector needs to know of the counter, at the time a leak is found. */
export interface LeakScope {
  /** Whether the counter is still open: a close releases every reference, so nothing leaks after it. */
  readonly open: () => boolean;
  /** The size of a live object, or undefined once it is deleted (or the counter is gone). */
  readonly sizeOf: (id: ObjectId) => number | undefined;
}

/**
 * Watches `Ref`s and leases with a `FinalizationRegistry`: one collected while it still
 * holds its references is reported, never released (its references stay, as without the
 * detector: releasing at a GC's whim would make handlers' timing depend on the collector).
 */
export class LeakDetector {
  readonly #registry = new FinalizationRegistry<Held>((held) => this.#found(held));
  readonly #scope: LeakScope;
  readonly #stacks: boolean;
  readonly #onLeak: ((leak: Leak) => void) | undefined;

  constructor(scope: LeakScope, stacks: boolean, onLeak: ((leak: Leak) => void) | undefined) {
    this.#scope = scope;
    this.#stacks = stacks;
    this.#onLeak = onLeak;
  }

  /** Starts watching `handle`, which holds one reference on each of `ids`. */
  track(handle: object, kind: Leak["kind"], ids: readonly ObjectId[]): void {
    this.#registry.register(handle, { kind, ids, stack: this.#stacks ? callerStack() : undefined }, handle);
  }

  /** Stops watching `handle`: its references were released or handed on. */
  untrack(handle: object): void {
    this.#registry.unregister(handle);
  }

  #found(held: Held): void {
    if (!this.#scope.open()) return;
    let sizeBytes = 0;
    for (const id of held.ids) sizeBytes += this.#scope.sizeOf(id) ?? 0;
    const leak: Leak = Object.freeze({ kind: held.kind, ids: held.ids, sizeBytes, stack: held.stack });
    const hook = this.#onLeak;
    if (hook === undefined) return warn(leakMessage(leak));
    try {
      hook(leak);
    } catch (error) {
      warn(`refscope: the onLeak hook threw while reporting: ${leakMessage(leak)} (${describe(error)})`);
    }
  }
}

/** A leak in one line: what leaked, how much, and the first frame of where it was made. */
export function leakMessage(leak: Leak): string {
  const what = leak.kind === "ref"
    ? `a Ref to object ${leak.ids[0]}`
    : `a lease of ${leak.kind} refs on ${leak.ids.length} object${leak.ids.length === 1 ? "" : "s"}`;
  const where = leak.stack === undefined ? "" : `, made ${leak.stack.split("\n")[0].trim()}`;
  return `refscope: ${what} (${leak.sizeBytes} bytes) was garbage-collected without release()${where}; ` +
    "its references stay, and keep the object in scope until the counter closes";
}

/** The directory of refscope's modules, as file path and URL: their frames are not the caller's. */
const ownFrames = (() => {
  const url = new URL("./", import.meta.url);
  return url.protocol === "file:" ? [url.href, fileURLToPath(url)] : [url.href];
})();

/** The stack of the code that called into refscope, refscope's own frames left out. */
function callerStack(): string | undefined {
  const stack = new Error().stack;
  if (stack === undefined) return undefined;
  const frames = stack.split("\n").filter((line) =>
    /^\s+at /.test(line) && !ownFrames.some((own) => line.includes(own))
  );
  return frames.length === 0 ? undefined : frames.map((line) => line.trim()).join("\n");
}

/** Bucket bounds of `HandlerTimes`, in ms: decades from 1 µs to 1 s, then the rest. */
const bucketBounds = [0.001, 0.01, 0.1, 1, 10, 100, 1000, Infinity] as const;

/** The default `slowMs`: a handler that runs this long holds up every later one visibly. */
export const defaultSlowMs = 10;

/**
 * Times one thread's handlers: a histogram of their synchronous run times, and reports of
 * those that run for `slowMs` or more, or whose promise stays pending that long.
 */
export class HandlerTiming {
  readonly slowMs: number;
  readonly #onSlow: ((slow: SlowHandler) => void) | undefined;
  #count = 0;
  #totalMs = 0;
  #maxMs = 0;
  #slow = 0;
  readonly #buckets = new Float64Array(bucketBounds.length);

  constructor(slowMs: number, onSlow: ((slow: SlowHandler) => void) | undefined) {
    this.slowMs = slowMs;
    this.#onSlow = onSlow;
  }

  /** Records a handler's synchronous run of `ms`, and reports it if slow. */
  record(objectId: ObjectId, handler: OutOfScopeHandler, ms: number): void {
    this.#count++;
    this.#totalMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    let bucket = 0;
    while (ms >= bucketBounds[bucket]) bucket++;
    this.#buckets[bucket]++;
    if (ms >= this.slowMs) this.#report({ objectId, handler, ms, pending: false });
  }

  /**
   * Watches a handler's promise, which the caller subscribes to with the returned
   * `settled`: if it has not settled `slowMs` after `startMs`, it is reported as pending.
   */
  watch(objectId: ObjectId, handler: OutOfScopeHandler, startMs: number): () => void {
    let timer: ReturnType<typeof setTimeout>;
    const check = () => {
      const ms = performance.now() - startMs;
      // Timers may fire a little early by this clock: wait out the rest.
      if (ms < this.slowMs) return arm(this.slowMs - ms);
      this.#report({ objectId, handler, ms, pending: true });
    };
    const arm = (delay: number) => {
      // A handler that ran past the threshold before it returned its promise is checked at once.
      timer = setTimeout(check, Math.max(0, Math.ceil(delay)));
      // Watching a handler must not keep the process alive.
      (timer as { unref?: () => void }).unref?.();
    };
    arm(this.slowMs - (performance.now() - startMs));
    return () => clearTimeout(timer);
  }

  figures(): HandlerTimes {
    return {
      count: this.#count,
      totalMs: this.#totalMs,
      maxMs: this.#maxMs,
      buckets: bucketBounds.map((belowMs, index) => ({ belowMs, count: this.#buckets[index] })),
      slow: this.#slow,
    };
  }

  #report(slow: SlowHandler): void {
    this.#slow++;
    const report = Object.freeze(slow);
    const hook = this.#onSlow;
    if (hook === undefined) return warn(slowMessage(report, this.slowMs));
    try {
      hook(report);
    } catch (error) {
      warn(`refscope: the onSlow hook threw while reporting: ${slowMessage(report, this.slowMs)} (${describe(error)})`);
    }
  }
}

/** A slow handler in one line, naming the object and the handler. */
export function slowMessage(slow: SlowHandler, slowMs: number): string {
  const name = typeof slow.handler.name === "string" && slow.handler.name !== "" ? ` ${slow.handler.name}` : "";
  const what = slow.pending
    ? `an async handler${name} of object ${slow.objectId} is still pending after ${slow.ms.toFixed(1)} ms`
    : `a handler${name} of object ${slow.objectId} ran for ${slow.ms.toFixed(1)} ms`;
  return `refscope: ${what} (slow: ${slowMs} ms or more); handlers must not block, as every later one waits`;
}

/** `console.warn`, which must not throw (a console may fail): a diagnostic never breaks the caller. */
function warn(message: string): void {
  try {
    console.warn(message);
  } catch { /* Nothing is left to tell. */ }
}
