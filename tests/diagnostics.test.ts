// Diagnostics, both opt-in: leak detection (a Ref or lease garbage-collected while it still
// holds references is reported, never released) and handler timing (a histogram per thread
// in stats(), and reports of handlers that run, or stay pending, too long).
import { Counter, type Leak, type Ref, type SlowHandler } from "../mod.ts";
import { busy, suite, until } from "./_harness.ts";
import { collectGarbage } from "./_native.ts";

/** Collects garbage until `done()` holds, letting finalizers run between collections. */
async function collectUntil(done: () => boolean, what: string): Promise<void> {
  await until(() => {
    if (!done()) collectGarbage();
    return done();
  }, what);
}

/** A sentinel whose finalizer has run once a collection took everything made before it. */
function sentinel(): () => boolean {
  let collected = false;
  const registry = new FinalizationRegistry(() => void (collected = true));
  registry.register({}, 0);
  // The registry must outlive the collection: a collected registry calls nothing.
  return () => registry !== undefined && collected;
}

/** Creates a Ref and drops it unreleased: the leak under test, made where its stack shows it. */
function makeLeak(counter: Counter, sizeBytes: number): number {
  return counter.create({ sizeBytes }).id;
}

/** Captures `console.warn` lines while `body` runs. */
async function warnings(body: (lines: readonly string[]) => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    await body(lines);
  } finally {
    console.warn = original;
  }
  return lines;
}

suite("diagnostics: leaks and slow handlers", async (t) => {
  await t.test("a Ref collected unreleased is reported with its id, size and where it was made", async (t) => {
    const leaks: Leak[] = [];
    await using counter = new Counter({ leaks: { onLeak: (leak) => void leaks.push(leak) } });
    const id = makeLeak(counter, 4096);
    await collectUntil(() => leaks.length > 0, "the leak report");
    t.eq(leaks.length, 1, "one report");
    const [leak] = leaks;
    t.eq([leak.kind, leak.ids, leak.sizeBytes], ["ref", [id], 4096], "the kind, the object and its size");
    t.ok(leak.stack?.split("\n")[0].includes("makeLeak"), `made in makeLeak: ${leak.stack?.split("\n")[0]}`);
    t.ok(!leak.stack?.includes("lib/counter.ts"), "refscope's own frames are left out");
    t.eq(counter.info(id)?.localRefs, 1, "reported, never released: the reference stays");
  });

  await t.test("leases are watched too; released, lent and disposed handles are not reported", async (t) => {
    const leaks: Leak[] = [];
    await using counter = new Counter({ leaks: { onLeak: (leak) => void leaks.push(leak), stacks: false } });
    const kept = counter.create({ sizeBytes: 10 });
    (() => {
      counter.addSubmittedRefs([kept, kept]); // Leaked.
      counter.addLineageRefs([kept]).release();
      counter.create().release();
      counter.releaseAll([counter.create(), counter.create()]);
      counter.create()[Symbol.dispose]();
      const lent = counter.create().lend();
      counter.reclaim(lent);
    })();
    const done = sentinel();
    await collectUntil(() => leaks.length > 0 && done(), "the lease's leak report");
    t.eq(leaks.length, 1, "only the leaked lease is reported");
    t.eq([leaks[0].kind, leaks[0].ids, leaks[0].sizeBytes], ["submitted", [kept.id, kept.id], 20], "its objects");
    t.eq(leaks[0].stack, undefined, "no stack with stacks: false");
    kept.release();
  });

  await t.test("without a hook, a leak is one console.warn line; off by default, nothing", async (t) => {
    const lines = await warnings(async (lines) => {
      await using quiet = new Counter();
      await using loud = new Counter({ leaks: true });
      const ids = [makeLeak(quiet, 1), makeLeak(loud, 7)];
      const done = sentinel();
      await collectUntil(() => lines.length > 0 && done(), "the warning");
      t.ok(ids.length === 2, "both leaked");
    });
    t.eq(lines.length, 1, "one warning: the counter without leak detection reports nothing");
    t.ok(!lines[0].includes("\n"), "on one line");
    t.ok(
      /a Ref to object \d+ \(7 bytes\) was garbage-collected without release\(\), made at /.test(lines[0]),
      lines[0],
    );
    t.ok(lines[0].includes("makeLeak"), "naming where it was made");
  });

  await t.test("no report once the counter is closed: the close released every reference", async (t) => {
    const leaks: Leak[] = [];
    const counter = new Counter({ leaks: { onLeak: (leak) => void leaks.push(leak) } });
    makeLeak(counter, 1);
    await counter.close();
    const done = sentinel();
    await collectUntil(done, "a collection");
    await until(() => true, "a turn");
    t.eq(leaks, [], "nothing reported");
  });

  await t.test("handler timing: off by default; on, a histogram of every handler of this thread", async (t) => {
    await using plain = new Counter();
    t.eq(plain.stats().handlerTimes, undefined, "off by default: no figures");
    await using counter = new Counter({ handlerTiming: { slowMs: 1000 } });
    let fired = 0;
    const refs: Ref[] = [];
    for (let index = 0; index < 100; index++) {
      const ref = counter.create();
      ref.onOutOfScope(() => void fired++);
      refs.push(ref);
    }
    counter.releaseAll(refs);
    await until(() => fired === 100, "100 handlers");
    const times = counter.stats().handlerTimes!;
    t.eq(times.count, 100, "each handler timed");
    t.eq(times.buckets.reduce((sum, bucket) => sum + bucket.count, 0), 100, "the buckets hold every run");
    t.eq(times.buckets.map((bucket) => bucket.belowMs), [0.001, 0.01, 0.1, 1, 10, 100, 1000, Infinity], "decades");
    t.ok(times.maxMs >= 0 && times.totalMs >= times.maxMs, `max ${times.maxMs} ms of ${times.totalMs} ms in all`);
    t.eq(times.slow, 0, "none slow");
  });

  await t.test("a slow handler, and an async one left pending, are reported naming the object", async (t) => {
    const slow: SlowHandler[] = [];
    await using counter = new Counter({ handlerTiming: { slowMs: 20, onSlow: (report) => void slow.push(report) } });
    const [busyRef, pendingRef, quickRef] = [counter.create(), counter.create(), counter.create()];
    const onBusyGone = () => busy(30);
    busyRef.onOutOfScope(onBusyGone);
    pendingRef.onOutOfScope(() => new Promise(() => {})); // Never settles.
    quickRef.onOutOfScope(async () => {});
    counter.releaseAll([busyRef, pendingRef, quickRef]);
    await until(() => slow.length === 2, "two slow reports");
    const [ran, pending] = slow;
    t.eq([ran.objectId, ran.pending, ran.handler], [busyRef.id, false, onBusyGone], "the busy handler, by object");
    t.ok(ran.ms >= 20, `it ran ${ran.ms} ms`);
    t.eq([pending.objectId, pending.pending], [pendingRef.id, true], "the pending one, as pending");
    t.ok(pending.ms >= 20, `pending for ${pending.ms} ms`);
    const times = counter.stats().handlerTimes!;
    t.eq([times.count, times.slow], [3, 2], "three timed, two slow");
    // The bucket that holds the busy run's time (10–100 ms, or more on a slow or emulated machine).
    const bucket = times.buckets.findIndex((b) => ran.ms < b.belowMs);
    t.ok(times.buckets[bucket].count >= 1, `the busy one in the bucket below ${times.buckets[bucket].belowMs} ms`);
  });

  await t.test("without a hook, a slow handler is one console.warn line naming it", async (t) => {
    const lines = await warnings(async (lines) => {
      await using counter = new Counter({ handlerTiming: { slowMs: 5 } });
      const ref = counter.create();
      ref.onOutOfScope(function onBlockGone() {
        busy(10);
      });
      ref.release();
      await until(() => lines.length === 1, "the warning");
    });
    t.eq(lines.length, 1, "one warning");
    t.ok(/a handler onBlockGone of object \d+ ran for [\d.]+ ms \(slow: 5 ms or more\)/.test(lines[0]), lines[0]);
  });
});
