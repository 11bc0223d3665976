// Soak: many object lifetimes through the public API (create → onOutOfScope → release), in
// batches released from the JS thread and from two native threads at once. Every handler
// fires exactly once, and native memory returns to its size after the first batch; after a
// peak, it is given back.
//
// CI runs the short form; the full soak is 10 million lifetimes:
//   REFSCOPE_SOAK_LIFETIMES=10000000 deno run -A tests/soak.test.ts
//   REFSCOPE_SOAK_LIFETIMES=10000000 bun tests/soak.test.ts
import process from "node:process";
import { Counter, type Ref, Status } from "../mod.ts";
import { Delivery } from "../lib/delivery.ts";
import { CallbackKind, HintBit } from "../lib/ffi/abi.gen.ts";
import { native } from "../lib/ffi/mod.ts";
import { macrotasks, suite, until, within } from "./_harness.ts";
import { collectGarbage, MiB, ReleaseJob } from "./_native.ts";
import { nativeCounter } from "./_testkit.ts";

const batch = 10_000;
const lifetimes = Math.ceil(Number(process.env.REFSCOPE_SOAK_LIFETIMES ?? 2_000_000) / batch) * batch;
const rounds = lifetimes / batch;
/** Rounds before the resident set is first sampled (a fifth): the heaps and the table grow first. */
const warmUpRounds = Math.max(1, Math.floor(rounds / 5));
/** The resident set is sampled every tenth of the run after the warm-up. */
const sampleEvery = Math.max(1, Math.floor(rounds / 10));

suite("soak", async (t) => {
  await t.test(
    `${lifetimes} lifetimes from JS and native threads: each handler fires exactly once, memory returns to its size`,
    async (t) => {
      const counter = new Counter();
      let delivered = 0;
      let roundDone = Promise.withResolvers<void>();
      let roundTarget = 0;
      let failure: string | undefined;
      let memoryBytesAfterFirst = 0;
      let outsideHeapAfterWarmUp = 0;
      let outsideHeapMax = 0;
      const sampleOutsideHeap = () => {
        const { rss, heapTotal } = process.memoryUsage();
        outsideHeapMax = Math.max(outsideHeapMax, rss - heapTotal);
        return rss - heapTotal;
      };
      const started = performance.now();

      for (let round = 0; round < rounds && failure === undefined; round++) {
        const runs = new Uint8Array(batch); // a fresh one per round: a late duplicate cannot hide
        const refs: Ref[] = new Array(batch);
        for (let index = 0; index < batch; index++) {
          const ref = counter.create({ sizeBytes: 64 + (index % 8) });
          ref.onOutOfScope(() => {
            runs[index]++;
            if (++delivered === roundTarget) roundDone.resolve();
          });
          refs[index] = ref;
        }
        roundTarget = delivered + batch;
        roundDone = Promise.withResolvers<void>();
        // A quarter each: one release call per Ref, one releaseAll, and two native threads
        // (one call per id, and 64 ids per call) releasing at the same time as the JS thread.
        const quarter = batch / 4;
        const jobs = [
          new ReleaseJob(counter, refs.slice(2 * quarter, 3 * quarter).map((ref) => ref.id), 1),
          new ReleaseJob(counter, refs.slice(3 * quarter).map((ref) => ref.id), 64),
        ];
        for (let index = 0; index < quarter; index++) refs[index].release();
        counter.releaseAll(refs.slice(quarter, 2 * quarter));
        await within(roundDone.promise, 30_000, `the handlers of round ${round}`);
        const errors = jobs.map((job) => job.join().firstError);
        if (errors.some((status) => status !== 0)) failure = `round ${round}: a native release failed (${errors})`;
        else if (runs.some((count) => count !== 1)) {
          failure = `round ${round}: a handler ran ${runs.find((c) => c !== 1)} times`;
        }

        if (round === 0) memoryBytesAfterFirst = counter.stats().memoryBytes;
        if (round + 1 === warmUpRounds) {
          collectGarbage();
          outsideHeapAfterWarmUp = sampleOutsideHeap();
        }
        if (round + 1 > warmUpRounds && (round + 1) % sampleEvery === 0) {
          sampleOutsideHeap();
        }
      }
      const seconds = (performance.now() - started) / 1000;
      await macrotasks(10); // a stray late delivery would show in the totals below
      t.eq(failure, undefined, "every round: each handler ran exactly once, every native release succeeded");
      t.eq(delivered, lifetimes, `${lifetimes} deliveries in all, none twice (${seconds.toFixed(1)} s)`);

      const stats = counter.stats();
      t.eq(
        [stats.objectsCreated, stats.callbacksRegistered, stats.callbacksReleased, stats.handlersFired],
        [lifetimes, lifetimes, lifetimes, lifetimes],
        "stats: every object created, every handler registered, released and fired",
      );
      t.eq(
        [stats.liveObjects, stats.liveBytes, stats.pendingHandlers, stats.pendingTokens, stats.handlerErrors],
        [0, 0, 0, 0, 0],
        "no live object, byte, handler or delivery is left",
      );
      // At most: the dispatcher may have given it back meanwhile, on a slow machine.
      t.ok(
        stats.memoryBytes <= memoryBytesAfterFirst,
        `native memory is at most what one batch needed (${(stats.memoryBytes / 1024).toFixed(0)} of ` +
          `${(memoryBytesAfterFirst / 1024).toFixed(0)} KiB)`,
      );

      // The native figures above are exact; the resident set is a backstop. It is measured
      // outside the JS heap (RSS minus the heap's committed size): Deno runs without a
      // forced collection and grows its heap for the first 2M lifetimes or so, by up to
      // 35 MiB, which says nothing about refscope. Outside the heap, both runtimes stayed
      // within about 6 MiB of the warm-up figure over 10M lifetimes. The bound, 24 MiB,
      // catches a leak of 16 bytes per lifetime in the short form (2M) and of 4 bytes in
      // the full run (10M).
      collectGarbage();
      sampleOutsideHeap();
      const growth = outsideHeapMax - outsideHeapAfterWarmUp;
      t.ok(
        rounds <= warmUpRounds || growth < 24 * MiB,
        `resident memory outside the JS heap after the warm-up (${warmUpRounds * batch} lifetimes): ` +
          `${(outsideHeapAfterWarmUp / MiB).toFixed(1)} MiB, then at most ${(growth / MiB).toFixed(1)} MiB more ` +
          `(bound 24 MiB; whole resident set at the end ${(process.memoryUsage().rss / MiB).toFixed(1)} MiB)`,
      );
      await within(counter.close(), 10_000, "close");
    },
    // Generous: the full run takes tens of seconds on a slow machine.
    { timeout: 60_000 + lifetimes / 100 },
  );

  await t.test("after a peak, native memory is given back once the thread's objects are gone; old ids stay stale", async (t) => {
    const counter = new Counter();
    const start = counter.stats().memoryBytes;
    const peakObjects = 200_000;
    const refs: Ref[] = new Array(peakObjects);
    let fired = 0;
    for (let index = 0; index < peakObjects; index++) {
      refs[index] = counter.create({ sizeBytes: 1 });
      refs[index].onOutOfScope(() => void fired++);
    }
    const oldIds = refs.map((ref) => ref.id);
    const peak = counter.stats().memoryBytes;
    counter.releaseAll(refs);
    await until(() => fired === peakObjects && counter.stats().pendingTokens === 0, "the peak's handlers");
    // The dispatcher gives it back once the shard has stayed empty for a second or two.
    const emptied = performance.now();
    const bound = start + 4 * peakObjects;
    await until(() => counter.stats().memoryBytes <= bound, "native memory given back", 15_000);
    const after = counter.stats().memoryBytes;
    t.ok(
      after <= bound,
      `memoryBytes ${start} → ${peak} at ${peakObjects} live objects → ${after}, ` +
        `${((performance.now() - emptied) / 1000).toFixed(1)} s after (at most 4 bytes per slot stay)`,
    );
    // A deleted object's info is undefined (a forged id would throw INVALID_ID).
    t.eq(oldIds.filter((id) => counter.info(id) === undefined).length, peakObjects, "every old id is stale");
    const freeCode = (id: number) => {
      try {
        counter.free(id);
        return "none";
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    t.eq([freeCode(oldIds[0]), freeCode(oldIds[peakObjects - 1])], ["STALE_ID", "STALE_ID"], "and refused as STALE_ID");
    const fresh = counter.create({ sizeBytes: 1 });
    t.eq(new Set(oldIds).has(fresh.id), false, "a new object never takes an old id");
    t.ok(counter.stats().memoryBytes < peak / 8, "the table grows again from small");
    fresh.release();
    await within(counter.close(), 10_000, "close");
  });

  await t.test("a sink's handler tables shrink once a burst of handlers has run, and the sink still works", async (t) => {
    const counter = new Counter();
    const pointer = nativeCounter(counter);
    const symbols = native().symbols;
    // A second sink of this thread, driven directly through the FFI, to see its tables.
    const delivery = Delivery.open(pointer);
    const create = () => {
      const cell = new Float64Array(1);
      if (symbols.refscope_object_create(pointer, 0, delivery.sink, cell) !== Status.OK) throw new Error("create");
      return cell[0];
    };
    const release = (ids: Float64Array) => {
      const hint = symbols.refscope_object_release_batch(pointer, ids, ids.length, delivery.sink);
      if (hint < 0) throw new Error(`release: ${hint}`);
      if ((hint & HintBit.DRAIN) !== 0) delivery.schedule();
    };
    const burst = 100_000;
    let fired = 0;
    const ids = new Float64Array(burst);
    for (let index = 0; index < burst; index++) {
      ids[index] = create();
      delivery.register(CallbackKind.OUT_OF_SCOPE, ids[index], () => void fired++);
    }
    t.eq(delivery.handlerSlots, burst, `${burst} handler slots during the burst`);
    release(ids);
    await until(() => fired === burst && delivery.handlerSlots === 0, "the burst's handlers, then the shrink");
    t.eq([fired, delivery.handlersPending, delivery.handlerSlots], [burst, 0, 0], "all ran once; the tables are empty");
    const again = Float64Array.of(create());
    let firedAgain = 0;
    delivery.register(CallbackKind.OUT_OF_SCOPE, again[0], () => void firedAgain++);
    release(again);
    await until(() => firedAgain === 1, "a handler registered after the shrink");
    t.eq([firedAgain, delivery.handlerSlots], [1, 1], "runs once, from slot 0");
    while (symbols.refscope_sink_close(pointer, delivery.sink) !== Status.OK) await macrotasks(1);
    delivery.closeWake();
    await within(counter.close(), 10_000, "close");
  });
});
