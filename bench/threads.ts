/**
 * Benchmark 5, scaling: native threads releasing concurrently, two against one.
 *
 * The table is split into shards with a lock each, and an object lives in the shard of the
 * thread that created it. So threads releasing objects they created (object lifetimes:
 * create, then release) take different locks. Threads releasing objects that one other
 * thread created (here: the JS thread; issue 15's Worker-pool shape) take no lock at all
 * for an object with nothing but its count (`Table.releaseFast`): two and four of them
 * are measured against one.
 */
import { bench } from "mitata";
import { Counter } from "../mod.ts";
import { Job, log, measure, quick, record } from "./lib.ts";

const objects = quick ? 100_000 : 1_000_000;

export async function threadScaling(): Promise<void> {
  log(`\n== 5. ${objects} releases, one native thread against two`);
  const counter = new Counter();
  const names = {
    one: `1 native thread, ${objects} lifetimes (create, release)`,
    two: `2 native threads, ${objects / 2} lifetimes each`,
    sharedOne: `1 native thread, ${objects} releases of objects the JS thread created`,
    sharedTwo: `2 native threads, ${objects / 2} releases each of objects the JS thread created`,
    sharedFour: `4 native threads, ${objects / 4} releases each of objects the JS thread created`,
  };
  bench(names.one, () => {
    Job.lifetimes(counter, objects).join();
  });
  bench(names.two, () => {
    const jobs = [Job.lifetimes(counter, objects / 2), Job.lifetimes(counter, objects / 2)];
    for (const job of jobs) job.join();
  });
  const ids = () => Float64Array.from({ length: objects }, () => counter.create().id);
  // `threads` native threads, each releasing its share of the JS thread's objects.
  const shared = (threads: number) =>
    function* () {
      yield {
        [0]: ids,
        bench(all: Float64Array) {
          const share = all.length / threads;
          const jobs = Array.from({ length: threads }, (_, part) =>
            Job.release(counter, all.subarray(part * share, (part + 1) * share), 1));
          for (const job of jobs) {
            job.join();
          }
        },
      };
    };
  bench(names.sharedOne, shared(1));
  bench(names.sharedTwo, shared(2));
  bench(names.sharedFour, shared(4));
  const ns = await measure();
  await counter.close();
  const rate = (name: string) => objects / (ns.get(name)! / 1e9);
  record({
    name: "object lifetimes/s with two native threads (each releases what it created)",
    value: rate(names.two),
    unit: "releases/s",
    baseline: { name: "one native thread", value: rate(names.one) },
    target: { text: "≥ 1.5x one thread", met: rate(names.two) >= 1.5 * rate(names.one) },
  });
  record({
    name: "releases/s with two native threads, objects created by one other thread",
    value: rate(names.sharedTwo),
    unit: "releases/s",
    baseline: { name: "one native thread", value: rate(names.sharedOne) },
    target: { text: "≥ 1.5x one thread", met: rate(names.sharedTwo) >= 1.5 * rate(names.sharedOne) },
  });
  // Four threads on a machine of two cores (see RESULTS.md's machine line) cannot run four
  // at once: reported, without a target.
  record({
    name: "releases/s with four native threads, objects created by one other thread",
    value: rate(names.sharedFour),
    unit: "releases/s",
    baseline: { name: "one native thread", value: rate(names.sharedOne) },
  });
}
