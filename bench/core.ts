/**
 * Core costs of refscope against a pure-TS baseline, measured in the same run with mitata.
 * The same file runs on Deno and Bun: `npm run bench` runs both.
 *
 * The baseline is what a program would write without native code: a `Map` from id to
 * count and handlers, delivering with `queueMicrotask`. It is faster per call (no FFI), but
 * it cannot be released from another thread, and its handlers run in a microtask of the
 * releasing code. The figures show what refscope's guarantees cost.
 */
import { bench, run, summary } from "mitata";
import { Counter } from "../mod.ts";

type Handler = (id: number) => void;

/** The pure-TS alternative: same operations, no native table, no threads. */
class MapCounter {
  #next = 1;
  #objects = new Map<number, { refs: number; handlers: Handler[] }>();

  create(): number {
    const id = this.#next++;
    this.#objects.set(id, { refs: 1, handlers: [] });
    return id;
  }

  retain(id: number): void {
    this.#objects.get(id)!.refs++;
  }

  release(id: number): void {
    const object = this.#objects.get(id)!;
    if (--object.refs > 0) return;
    this.#objects.delete(id);
    for (const handler of object.handlers) queueMicrotask(() => handler(id));
  }

  onOutOfScope(id: number, handler: Handler): boolean {
    const object = this.#objects.get(id);
    if (object === undefined) return false;
    object.handlers.push(handler);
    return true;
  }
}

const counter = new Counter();
const baseline = new MapCounter();
const held = counter.create();
const heldId = baseline.create();

summary(() => {
  bench("retain+release: refscope Ref", () => {
    held.retain().release();
  });
  bench("retain+release: Map counter (baseline)", () => {
    baseline.retain(heldId);
    baseline.release(heldId);
  });
});

summary(() => {
  bench("create+release: refscope", () => {
    counter.create().release();
  });
  bench("create+release: Map counter (baseline)", () => {
    baseline.release(baseline.create());
  });
});

const lifetimes = 10_000;

summary(() => {
  bench(`${lifetimes} lifetimes, create → handler ran: refscope (batch release)`, async () => {
    const done = Promise.withResolvers<void>();
    let left = lifetimes;
    const handler = () => {
      if (--left === 0) done.resolve();
    };
    const refs = new Array(lifetimes);
    for (let index = 0; index < lifetimes; index++) {
      const ref = counter.create();
      ref.onOutOfScope(handler);
      refs[index] = ref;
    }
    counter.releaseAll(refs);
    await done.promise;
  });
  bench(`${lifetimes} lifetimes, create → handler ran: Map counter (baseline)`, async () => {
    const done = Promise.withResolvers<void>();
    let left = lifetimes;
    const handler = () => {
      if (--left === 0) done.resolve();
    };
    for (let index = 0; index < lifetimes; index++) {
      const id = baseline.create();
      baseline.onOutOfScope(id, handler);
      baseline.release(id);
    }
    await done.promise;
  });
});

console.log(`refscope core benchmarks on ${"Bun" in globalThis ? "Bun" : "Deno"}`);
await run();
held.release();
await counter.close();
