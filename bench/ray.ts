/**
 * Benchmark 7, the shape of Ray's own release test for out-of-scope callbacks
 * (`release/object_store/test_callback_throughput.py`, ray-project/ray#64011, extended to
 * 10,000 blocks in #64521): registration cost per callback, a burst drop of N blocks timed
 * until every callback has fired, each callback's latency from the drop, and the same burst
 * with the bookkeeping Ray's `BlockRefCounter` does (here a `MemoryBudget` owner charged with
 * each block's bytes, given back by its out-of-scope handler). N = 10,000 and 1,000,000.
 *
 * Baseline in the same run: the pure-TS Map counter (queueMicrotask delivery), with the
 * bookkeeping done by hand in its handler. Ray publishes no figures for these measurements
 * (its PR times 100 and 1,000-block pipelines in a release test whose results are internal,
 * and removed its `ray_perf.py` microbenchmark in review), so none are set beside these.
 */
import { bench } from "mitata";
import { setImmediate } from "node:timers";
import { Counter, MemoryBudget, type Ref } from "../mod.ts";
import { log, MapCounter, measure, percentile, quick, record } from "./lib.ts";

// Not fewer than 10,000: below about 65 µs an iteration, mitata prepares 4096 iterations'
// blocks at once.
const sizes = quick ? [10_000] : [10_000, 1_000_000];
/** Each block's size, as Ray Data's test blocks (1 MiB). */
const blockBytes = 1 << 20;

export async function rayReleaseTest(): Promise<void> {
  log("\n== 7. Ray's release-test shape: register, burst drop, per-callback latency, bookkeeping");
  const counter = new Counter();
  const map = new MapCounter();
  let fired = 0;
  let target = 0;
  let done: () => void = () => {};
  const handler = () => {
    if (++fired === target) done();
  };
  /**
   * For registration alone: blocks released later must not count toward a burst's target.
   * Their deliveries are waited for before the next setup (mitata does not yield between
   * the iterations of a synchronous benchmark, so they would pile up).
   */
  let idlePending = 0;
  const idle = () => void idlePending--;
  const idleDelivered = async () => {
    while (idlePending > 0) await new Promise((resolve) => setImmediate(resolve));
  };
  const allFired = (count: number) =>
    new Promise<void>((resolve) => {
      fired = 0;
      target = count;
      done = resolve;
    });
  let bookkept = 0;
  const budget = new MemoryBudget(counter, { onRelease: () => handler() });
  const blocks = budget.owner("blocks");

  /** What registration runs left live, released before the next setup (untimed). */
  const leftover: Ref[][] = [];
  const leftoverIds: number[][] = [];
  const releaseLeftovers = () => {
    for (const made of leftover.splice(0)) counter.releaseAll(made);
    for (const made of leftoverIds.splice(0)) for (const id of made) map.release(id);
  };
  const refs = async (count: number, sizeBytes = 0): Promise<Ref[]> => {
    releaseLeftovers();
    await idleDelivered();
    const made = new Array<Ref>(count);
    for (let index = 0; index < count; index++) made[index] = counter.create({ sizeBytes });
    return made;
  };
  const ids = async (count: number): Promise<number[]> => {
    releaseLeftovers();
    await idleDelivered();
    return Array.from({ length: count }, () => map.create());
  };

  /** A burst of `n` refscope blocks, each set up by `attach` (untimed), released at once. */
  const refscopeBurst = (name: string, n: number, sizeBytes: number, attach: (ref: Ref) => void) => {
    bench(name, function* () {
      yield {
        [0]: async () => {
          const made = await refs(n, sizeBytes);
          for (const ref of made) attach(ref);
          return made;
        },
        async bench(made: Ref[]) {
          const fired = allFired(n);
          counter.releaseAll(made);
          await fired;
        },
      };
    });
  };

  const names = (n: number) => ({
    register: `register ${n} out-of-scope callbacks: refscope`,
    registerBaseline: `register ${n} out-of-scope callbacks: Map counter`,
    burst: `burst drop of ${n} blocks until every callback fired: refscope`,
    burstBaseline: `burst drop of ${n} blocks until every callback fired: Map counter`,
    budget: `burst drop of ${n} blocks with MemoryBudget bookkeeping: refscope`,
    budgetBaseline: `burst drop of ${n} blocks with bookkeeping by hand: Map counter`,
  });

  for (const n of sizes) {
    const name = names(n);
    bench(name.register, function* () {
      yield {
        [0]: () => refs(n),
        bench(made: Ref[]) {
          for (const ref of made) ref.onOutOfScope(idle);
          idlePending += made.length;
          leftover.push(made);
        },
      };
    });
    bench(name.registerBaseline, function* () {
      yield {
        [0]: () => ids(n),
        bench(made: number[]) {
          for (const id of made) map.onOutOfScope(id, idle);
          idlePending += made.length;
          leftoverIds.push(made);
        },
      };
    });
    refscopeBurst(name.burst, n, 0, (ref) => ref.onOutOfScope(handler));
    bench(name.burstBaseline, function* () {
      yield {
        [0]: async () => {
          const made = await ids(n);
          for (const id of made) map.onOutOfScope(id, handler);
          return made;
        },
        async bench(made: number[]) {
          const fired = allFired(n);
          for (const id of made) map.release(id);
          await fired;
        },
      };
    });
    refscopeBurst(name.budget, n, blockBytes, (ref) => blocks.track(ref));
    // The Map counter's bookkeeping: a byte total, given back in each block's handler.
    let used = 0;
    const giveBack = () => {
      used -= blockBytes;
      handler();
    };
    bench(name.budgetBaseline, function* () {
      yield {
        [0]: async () => {
          const made = await ids(n);
          for (const id of made) {
            used += blockBytes;
            map.onOutOfScope(id, giveBack);
          }
          return made;
        },
        async bench(made: number[]) {
          const fired = allFired(n);
          for (const id of made) map.release(id);
          await fired;
          bookkept = used;
        },
      };
    });
  }
  const ns = await measure();
  releaseLeftovers();
  await idleDelivered();
  if (budget.stats().usedBytes !== 0 || bookkept !== 0) {
    throw new Error(`bookkeeping left ${budget.stats().usedBytes} and ${bookkept} bytes charged`);
  }

  // Per-callback latency, from the drop to the callback's start, over one burst of each size.
  const latencies = async (n: number, drop: () => void, register: (note: () => void) => void) => {
    const at = new Float64Array(n);
    let count = 0;
    const fired = allFired(n);
    register(() => {
      at[count++] = performance.now();
      handler();
    });
    const start = performance.now();
    drop();
    await fired;
    return at.map((time) => (time - start) * 1000).sort();
  };

  for (const n of sizes) {
    const name = names(n);
    const perCallback = (key: "register" | "burst" | "budget") => {
      const [ours, theirs] = [ns.get(name[key])! / n, ns.get(name[`${key}Baseline`])! / n];
      return { value: ours, baseline: theirs };
    };
    const register = perCallback("register");
    record({
      name: `Ray shape, N=${n}: registration cost per callback`,
      value: register.value,
      unit: "ns",
      baseline: { name: "pure-TS Map counter", value: register.baseline },
    });
    const burst = perCallback("burst");
    record({
      name: `Ray shape, N=${n}: burst drop until all fired, per callback`,
      value: burst.value,
      unit: "ns",
      baseline: { name: "pure-TS Map counter", value: burst.baseline },
    });
    record({
      name: `Ray shape, N=${n}: burst drop until all fired, whole burst`,
      value: ns.get(name.burst)! / 1e6,
      unit: "ms",
      baseline: { name: "pure-TS Map counter", value: ns.get(name.burstBaseline)! / 1e6 },
    });
    const bookkeeping = perCallback("budget");
    record({
      name: `Ray shape, N=${n}: burst with MemoryBudget bookkeeping, per callback`,
      value: bookkeeping.value,
      unit: "ns",
      baseline: { name: "pure-TS Map counter, bytes counted by hand", value: bookkeeping.baseline },
    });

    // Each twice, the first burst to warm up: the second is recorded.
    const burstOnce = async () => {
      const made = await refs(n);
      return latencies(n, () => counter.releaseAll(made), (note) => {
        for (const ref of made) ref.onOutOfScope(note);
      });
    };
    const mapBurstOnce = async () => {
      const mapIds = await ids(n);
      return latencies(n, () => {
        for (const id of mapIds) map.release(id);
      }, (note) => {
        for (const id of mapIds) map.onOutOfScope(id, note);
      });
    };
    await burstOnce();
    const ours = await burstOnce();
    await mapBurstOnce();
    const theirs = await mapBurstOnce();
    for (const p of [0.5, 0.99]) {
      record({
        name: `Ray shape, N=${n}: drop→callback latency p${p * 100} within the burst`,
        value: percentile(ours, p),
        unit: "µs",
        baseline: { name: "pure-TS Map counter", value: percentile(theirs, p) },
      });
    }
  }
  await counter.close();
}
