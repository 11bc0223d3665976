/**
 * Benchmark 1, notification throughput: many objects go out of scope at once, released
 * from the JS thread or from a native thread, and the time runs until every handler has
 * run. Baselines in the same run: one thread-safe callback per event (same library, same
 * ids; Deno and Bun: Node has no such callback), a FinalizationRegistry (JS objects
 * dropped, GC forced), and a pure-TS Map counter delivering with queueMicrotask.
 */
import { bench } from "mitata";
import { Counter, type Ref } from "../mod.ts";
import { gc, Job, log, MapCounter, measure, quick, record, runtime, threadSafeCallback } from "./lib.ts";

const objects = quick ? 100_000 : 1_000_000;
/** Deno's thread-safe callback blocks the caller for each event (about 100 µs): fewer. */
const perEventObjects = quick ? 500 : runtime === "deno" ? 5_000 : 200_000;

export async function notifications(): Promise<void> {
  log(`\n== 1. notification throughput: ${objects} objects out of scope at once`);
  const counter = new Counter();
  let fired = 0;
  let target = 0;
  let done: () => void = () => {};
  const handler = () => {
    if (++fired === target) done();
  };
  // A native thread's releases owe nothing until they happen: an idle event loop (no
  // wake keeps one alive) would end the process before then, as it should. Hold it open.
  const waitForHandlers = (count: number) => {
    const alive = setInterval(() => {}, 1000);
    return new Promise<void>((resolve) => {
      fired = 0;
      target = count;
      done = resolve;
    }).finally(() => clearInterval(alive));
  };

  const refsWithHandlers = (count: number): Ref[] => {
    const refs = new Array<Ref>(count);
    for (let index = 0; index < count; index++) {
      const ref = counter.create();
      ref.onOutOfScope(handler);
      refs[index] = ref;
    }
    return refs;
  };

  const jsName = `refscope: ${objects} released on the JS thread (releaseAll)`;
  bench(jsName, function* () {
    yield {
      [0]: () => refsWithHandlers(objects),
      async bench(refs: Ref[]) {
        const handled = waitForHandlers(refs.length);
        counter.releaseAll(refs);
        await handled;
      },
    };
  });

  const nativeName = `refscope: ${objects} released by a native thread (batches of 4096)`;
  bench(nativeName, function* () {
    yield {
      [0]: () => Float64Array.from(refsWithHandlers(objects), (ref) => ref.id),
      async bench(ids: Float64Array) {
        const handled = waitForHandlers(ids.length);
        const job = Job.release(counter, ids, 4096);
        await handled;
        job.join();
      },
    };
  });

  // Baseline: one thread-safe callback call per event, from a native thread.
  let calls = 0;
  let callsTarget = 0;
  let callsDone: () => void = () => {};
  const perEvent = threadSafeCallback(() => {
    if (++calls === callsTarget) callsDone();
  });
  const perEventName = `baseline: ${perEventObjects} events, one thread-safe callback each`;
  if (perEvent !== undefined) {
    bench(perEventName, function* () {
      yield {
        [0]: () => Float64Array.from({ length: perEventObjects }, (_, index) => index + 1),
        async bench(ids: Float64Array) {
          const called = new Promise<void>((resolve) => {
            calls = 0;
            callsTarget = ids.length;
            callsDone = resolve;
          });
          const job = Job.callEach(perEvent.pointer, ids);
          await called;
          while (!job.done) await new Promise((resolve) => setTimeout(resolve, 0));
          job.join();
        },
      };
    });
  }

  // Baseline: FinalizationRegistry, the JS way to learn that an object is gone.
  let cleaned = 0;
  const registry = new FinalizationRegistry<number>(() => void cleaned++);
  const canForceGc = gc();
  const registryName = `baseline: ${objects} objects dropped, FinalizationRegistry (GC forced)`;
  if (canForceGc) {
    bench(registryName, function* () {
      yield {
        [0]: () => {
          const holder = { objects: new Array<object>(objects) };
          for (let index = 0; index < objects; index++) {
            const object = { index };
            registry.register(object, index);
            holder.objects[index] = object;
          }
          cleaned = 0;
          return holder;
        },
        async bench(holder: { objects: object[] | null }) {
          holder.objects = null;
          while (cleaned < objects) {
            gc();
            await new Promise((resolve) => setTimeout(resolve, 0));
          }
        },
      };
    });
  }

  // Baseline: a pure-TS Map counter delivering with queueMicrotask.
  const map = new MapCounter();
  const mapName = `baseline: ${objects} released, pure-TS Map counter (queueMicrotask)`;
  bench(mapName, function* () {
    yield {
      [0]: () => {
        const ids = new Array<number>(objects);
        for (let index = 0; index < objects; index++) {
          ids[index] = map.create();
          map.onOutOfScope(ids[index], handler);
        }
        return ids;
      },
      async bench(ids: number[]) {
        const handled = waitForHandlers(ids.length);
        for (const id of ids) map.release(id);
        await handled;
      },
    };
  });

  const ns = await measure();
  perEvent?.close();
  await counter.close();

  const rate = (name: string, count: number) => count / (ns.get(name)! / 1e9);
  const perEventRate = perEvent === undefined ? undefined : rate(perEventName, perEventObjects);
  const mapRate = rate(mapName, objects);
  const ratioTarget = runtime === "deno" ? 500 : 10;
  for (const [label, name] of [["JS thread", jsName], ["native thread", nativeName]] as const) {
    const value = rate(name, objects);
    record({
      name: `notifications, released on the ${label}`,
      value,
      unit: "notifications/s",
      // Node has no per-event alternative to compare with: the Map counter stands in.
      ...(perEventRate === undefined
        ? {
          baseline: { name: "pure-TS Map counter", value: mapRate },
          target: { text: "≥ 10M/s", met: value >= 10e6 },
        }
        : {
          baseline: { name: "one thread-safe callback per event", value: perEventRate },
          target: {
            text: `≥ 10M/s and ≥ ${ratioTarget}x the per-event baseline`,
            met: value >= 10e6 && value >= ratioTarget * perEventRate,
          },
        }),
    });
  }
  if (canForceGc) {
    record({
      name: "baseline: FinalizationRegistry cleanups",
      value: rate(registryName, objects),
      unit: "notifications/s",
    });
  }
  record({ name: "baseline: pure-TS Map counter", value: mapRate, unit: "notifications/s" });
  if (perEventRate !== undefined) {
    record({ name: "baseline: one thread-safe callback per event", value: perEventRate, unit: "notifications/s" });
  }
}
