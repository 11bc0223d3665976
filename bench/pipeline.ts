/**
 * Benchmark 2, pipeline latency (the shape of Ray's release test): producers create
 * objects, async consumers process them, and each reference is dropped as its consumer
 * finishes; measured is the time from the drop to the start of the object's handler,
 * at a light and a heavy load. Baseline: the pure-TS Map counter in the same pipeline.
 * Beside it, the event loop's lag while a burst of deliveries is drained: a timer set just
 * before 1M objects go out of scope at once, against the same timer with no burst.
 */
import { bench } from "mitata";
import { setImmediate } from "node:timers";
import { Counter } from "../mod.ts";
import { log, MapCounter, measure, percentile, quick, record } from "./lib.ts";

interface Load {
  name: string;
  objects: number;
  /** Consumers working at once. */
  concurrency: number;
}

const loads: Load[] = [
  { name: "light", objects: quick ? 500 : 5_000, concurrency: 4 },
  { name: "heavy", objects: quick ? 10_000 : 200_000, concurrency: 10_000 },
];

/** One consumer step of asynchronous work. */
const work = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Store {
  create(index: number, latencies: Float64Array, dropped: Float64Array, done: () => void): () => void;
}

/** Runs the pipeline; returns each object's drop→handler latency in µs, sorted. */
async function pipeline(load: Load, store: Store): Promise<Float64Array> {
  const latencies = new Float64Array(load.objects);
  const dropped = new Float64Array(load.objects);
  let handled = 0;
  const allHandled = Promise.withResolvers<void>();
  const done = () => {
    if (++handled === load.objects) allHandled.resolve();
  };
  let next = 0;
  const consumer = async () => {
    while (next < load.objects) {
      const index = next++;
      const release = store.create(index, latencies, dropped, done); // produce
      await work(); // consume
      await work();
      dropped[index] = performance.now();
      release(); // the consumer's reference goes
    }
  };
  await Promise.all(Array.from({ length: load.concurrency }, consumer));
  await allHandled.promise;
  return latencies.map((value) => value * 1000).sort();
}

const burstObjects = quick ? 100_000 : 1_000_000;
const burstRounds = 5;

/** How long a `setTimeout(0)` set now takes to fire, in ms. */
function timerLag(): Promise<number> {
  const fired = Promise.withResolvers<number>();
  const set = performance.now();
  setTimeout(() => fired.resolve(performance.now() - set), 0);
  return fired.promise;
}

/**
 * The event loop's lag while 1M deliveries are drained: a timer set as the burst's drain is
 * about to start (just after the `releaseAll` call that queued it returns: the call itself
 * is the application's own synchronous work), against the same timer with no burst.
 */
async function burstLag(): Promise<void> {
  const counter = new Counter();
  let ran = 0;
  let all = Promise.withResolvers<void>();
  const handler = () => {
    if (++ran === burstObjects) all.resolve();
  };
  const lags: number[] = [];
  const idle: number[] = [];
  let burstMs = 0;
  for (let round = 0; round < burstRounds; round++) {
    const refs = Array.from({ length: burstObjects }, () => counter.create());
    for (const ref of refs) ref.onOutOfScope(handler);
    ran = 0;
    all = Promise.withResolvers<void>();
    idle.push(await timerLag());
    counter.releaseAll(refs);
    const start = performance.now();
    const lag = timerLag();
    await all.promise;
    burstMs = Math.max(burstMs, performance.now() - start);
    lags.push(await lag);
  }
  await counter.close();
  const median = (values: number[]) => percentile(Float64Array.from(values).sort(), 0.5);
  record({
    name: `timer lag while ${burstObjects} deliveries are drained (median of ${burstRounds})`,
    value: median(lags),
    unit: "ms",
    baseline: { name: "the same timer, no burst", value: median(idle) },
    target: { text: "≤ 5 ms", met: median(lags) <= 5 },
  });
  record({
    name: `timer lag while ${burstObjects} deliveries are drained (worst of ${burstRounds})`,
    value: Math.max(...lags),
    unit: "ms",
    baseline: { name: "the same timer, no burst", value: Math.max(...idle) },
  });
  record({ name: `the drain of ${burstObjects} deliveries (longest)`, value: burstMs, unit: "ms" });
}

export async function pipelineLatency(): Promise<void> {
  log("\n== 2. pipeline latency: drop → handler start");
  const counter = new Counter();
  const refscope: Store = {
    create(index, latencies, dropped, done) {
      const ref = counter.create({ sizeBytes: 1024 });
      ref.onOutOfScope(() => {
        latencies[index] = performance.now() - dropped[index];
        done();
      });
      return () => ref.release();
    },
  };
  const map = new MapCounter();
  const baseline: Store = {
    create(index, latencies, dropped, done) {
      const id = map.create();
      map.onOutOfScope(id, () => {
        latencies[index] = performance.now() - dropped[index];
        done();
      });
      return () => map.release(id);
    },
  };

  const samples = new Map<string, Float64Array[]>();
  for (const load of loads) {
    for (const [store, label] of [[refscope, "refscope"], [baseline, "Map counter"]] as const) {
      const name = `${label}: ${load.name} pipeline, ${load.objects} objects, ${load.concurrency} consumers`;
      samples.set(name, []);
      bench(name, async () => {
        samples.get(name)!.push(await pipeline(load, store));
      });
    }
  }
  await measure();
  await counter.close();

  for (const load of loads) {
    const figures = (label: string) => {
      const runs = samples.get(
        `${label}: ${load.name} pipeline, ${load.objects} objects, ${load.concurrency} consumers`,
      )!;
      const all = Float64Array.from(runs.flatMap((run) => Array.from(run))).sort();
      return { p50: percentile(all, 0.5), p95: percentile(all, 0.95), p99: percentile(all, 0.99) };
    };
    const ours = figures("refscope");
    const theirs = figures("Map counter");
    for (const key of ["p50", "p95", "p99"] as const) {
      record({
        name: `drop→handler ${key}, ${load.name} load`,
        value: ours[key],
        unit: "µs",
        baseline: { name: "pure-TS Map counter", value: theirs[key] },
        target: key !== "p99"
          ? undefined
          : load.name === "light"
          ? { text: "≤ 200 µs", met: ours[key] <= 200 }
          : { text: "≤ 1 ms", met: ours[key] <= 1000 },
      });
    }
  }
  await burstLag();
}
