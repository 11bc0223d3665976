/**
 * Benchmark 4, mutator stall: a native thread releases objects (whose handlers are JS)
 * while the JS thread is busy for 50 ms; measured is the longest single release call.
 * Baseline: a native thread calling one thread-safe callback per event meanwhile (Deno and
 * Bun; Node has no such callback).
 */
import { bench } from "mitata";
import { Counter } from "../mod.ts";
import { Job, log, measure, quick, record, threadSafeCallback } from "./lib.ts";

const busyMs = 50;
const objects = quick ? 10_000 : 100_000;
const rounds = quick ? 2 : 5;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* the JS thread is busy */ }
}

export async function mutatorStall(): Promise<void> {
  log(`\n== 4. mutator stall: a native thread releases while JS is busy for ${busyMs} ms`);
  const counter = new Counter();
  let ours = 0;
  let oursP999 = 0;
  let floor = 0;
  for (let round = 0; round < rounds; round++) {
    const ids = Float64Array.from({ length: objects }, () => {
      const ref = counter.create();
      ref.onOutOfScope(() => {});
      return ref.id;
    });
    const job = Job.release(counter, ids, 1);
    busy(busyMs);
    while (!job.done) await new Promise((resolve) => setTimeout(resolve, 1));
    oursP999 = Math.max(oursP999, job.percentile(0.999));
    ours = Math.max(ours, job.join().callNsMax);
    await new Promise((resolve) => setTimeout(resolve, 10)); // let the handlers run

    // The same conditions, with a call that does nothing: what the machine itself adds
    // (preemption, interrupts) to any call on a native thread.
    const noop = Job.noop(objects);
    busy(busyMs);
    while (!noop.done) await new Promise((resolve) => setTimeout(resolve, 1));
    floor = Math.max(floor, noop.join().callNsMax);
  }

  let theirs = 0;
  let calls = 0;
  const perEvent = threadSafeCallback(() => void calls++);
  const events = 200;
  for (let round = 0; perEvent !== undefined && round < rounds; round++) {
    calls = 0;
    const job = Job.callEach(perEvent.pointer, Float64Array.from({ length: events }, (_, index) => index));
    busy(busyMs);
    while (calls < events || !job.done) await new Promise((resolve) => setTimeout(resolve, 1));
    theirs = Math.max(theirs, job.join().callNsMax);
  }
  perEvent?.close();

  // For mitata's table: the busy JS window, with the releases under it.
  bench(`refscope: ${objects} native releases under a ${busyMs} ms busy JS thread`, function* () {
    yield {
      [0]: () =>
        Float64Array.from({ length: objects }, () => {
          const ref = counter.create();
          ref.onOutOfScope(() => {});
          return ref.id;
        }),
      async bench(ids: Float64Array) {
        const job = Job.release(counter, ids, 1);
        busy(busyMs);
        while (!job.done) await new Promise((resolve) => setTimeout(resolve, 1));
        job.join();
      },
    };
  });
  await measure();
  await counter.close();

  record({
    name: "longest single release call while JS is busy",
    value: ours / 1000,
    unit: "µs",
    ...(perEvent === undefined
      ? {}
      : { baseline: { name: "longest thread-safe callback call (one per event)", value: theirs / 1000 } }),
    target: { text: "≤ 10 µs", met: ours <= 10_000 },
  });
  record({
    name: "longest no-op native call, same conditions (machine noise floor)",
    value: floor / 1000,
    unit: "µs",
  });
  record({ name: "release call, 99.9th percentile (upper bound)", value: oursP999 / 1000, unit: "µs" });
}
