/**
 * Benchmark 5, scaling: native threads releasing concurrently, two against one; each
 * release is a separate call that sends an object (with a native-side nothing: no
 * handler) out of scope.
 */
import { bench } from "mitata";
import { Counter } from "../mod.ts";
import { Job, log, measure, quick, record } from "./lib.ts";

const objects = quick ? 100_000 : 1_000_000;

export async function threadScaling(): Promise<void> {
  log(`\n== 5. ${objects} releases, one native thread against two`);
  const counter = new Counter();
  const ids = () => Float64Array.from({ length: objects }, () => counter.create().id);
  const names = { one: `1 native thread, ${objects} releases`, two: `2 native threads, ${objects / 2} releases each` };
  bench(names.one, function* () {
    yield {
      [0]: ids,
      bench(all: Float64Array) {
        const job = Job.release(counter, all, 1);
        job.join();
      },
    };
  });
  bench(names.two, function* () {
    yield {
      [0]: ids,
      bench(all: Float64Array) {
        const half = all.length / 2;
        const jobs = [Job.release(counter, all.subarray(0, half), 1), Job.release(counter, all.subarray(half), 1)];
        for (const job of jobs) job.join();
      },
    };
  });
  const ns = await measure();
  await counter.close();
  const one = objects / (ns.get(names.one)! / 1e9);
  const two = objects / (ns.get(names.two)! / 1e9);
  record({
    name: "releases/s with two native threads",
    value: two,
    unit: "releases/s",
    baseline: { name: "one native thread", value: one },
    target: { text: "≥ 1.5x one thread", met: two >= 1.5 * one },
  });
}
