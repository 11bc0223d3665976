// Releases from real native threads (librefscope_testkit): the releasing thread never waits
// for JS, handlers still run on the JS thread exactly once, wakes are coalesced, and close
// racing a releasing thread loses nothing.
import { Counter, type ObjectId } from "../mod.ts";
import { busy, suite, until } from "./_harness.ts";
import { ReleaseJob } from "./_native.ts";

/** Creates `count` objects, each with a handler counting its deliveries. */
function objects(counter: Counter, count: number, counts: Map<ObjectId, number>): ObjectId[] {
  return Array.from({ length: count }, () => {
    const ref = counter.create({ sizeBytes: 1 });
    ref.onOutOfScope((id) => void counts.set(id, (counts.get(id) ?? 0) + 1));
    // The reference now belongs to whichever thread releases this id.
    return ref.id;
  });
}

function exactlyOnce(counts: Map<ObjectId, number>, expected: number): boolean {
  return counts.size === expected && [...counts.values()].every((count) => count === 1);
}

suite("native threads", async (t) => {
  await t.test("a native thread dropping last references while JS is busy returns promptly", async (t) => {
    await using counter = new Counter();
    const counts = new Map<ObjectId, number>();
    const ids = objects(counter, 1000, counts);
    const busyMs = 200;

    const job = new ReleaseJob(counter, ids);
    let finishedWhileBusy = false;
    busy(busyMs, () => {
      finishedWhileBusy ||= job.done;
    });
    t.ok(finishedWhileBusy, `the thread made all 1000 releases while JS was busy for ${busyMs} ms`);
    t.eq(counts.size, 0, "no handler ran while the JS thread was busy (nothing inline)");
    const { callNsMax, firstError } = job.join();
    t.eq(firstError, 0, "every release succeeded");
    t.ok(callNsMax < busyMs * 1e6, `the longest release call (${(callNsMax / 1e3).toFixed(1)} µs) did not wait for JS`);

    await until(() => counts.size === 1000, "1000 handlers");
    t.ok(exactlyOnce(counts, 1000), "each handler ran exactly once, on the JS thread");
    t.eq(counter.stats().wakesSent, 1, "one coalesced wake for the whole batch");
  });

  await t.test("two native threads and the JS thread releasing at once", async (t) => {
    await using counter = new Counter();
    const counts = new Map<ObjectId, number>();
    const first = objects(counter, 5000, counts);
    const second = objects(counter, 5000, counts);
    const mine = objects(counter, 5000, counts);
    const jobs = [new ReleaseJob(counter, first), new ReleaseJob(counter, second)];
    for (const id of mine) counter.free(id); // Free from JS while the threads release.
    await until(() => jobs.every((job) => job.done), "both threads");
    t.ok(jobs.every((job) => job.join().firstError === 0), "every native release succeeded");
    await until(() => counts.size === 15000, "15000 handlers");
    t.ok(exactlyOnce(counts, 15000), "each handler ran exactly once");
    t.eq(counter.liveObjects, 5000, "the freed objects stay until their references drop");
  });

  await t.test("close right after a native thread's releases delivers each handler once", async (t) => {
    // Tokens and an owed wake are in flight when close() drains the sink itself: the
    // empty drain must cancel the wake cleanly (which used to abort the process).
    const counter = new Counter();
    const counts = new Map<ObjectId, number>();
    const ids = objects(counter, 10, counts);
    const job = new ReleaseJob(counter, ids);
    await until(() => job.done, "the native releases");
    job.join();
    await counter.close();
    t.ok(exactlyOnce(counts, 10), "every handler ran once, and the process is still alive");
  });

  await t.test("close racing a releasing native thread loses and duplicates nothing", async (t) => {
    const counter = new Counter();
    const counts = new Map<ObjectId, number>();
    const ids = objects(counter, 20000, counts);
    const job = new ReleaseJob(counter, ids);
    const closing = counter.close();
    // Join before close() can destroy the counter the thread is using.
    const { firstError } = job.join();
    await closing;
    t.ok(firstError === 0 || firstError === -7, "releases after close began failed with CLOSED, nothing else");
    t.ok(exactlyOnce(counts, 20000), "every handler ran exactly once, by release or by close");
  });
});
