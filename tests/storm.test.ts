// A wake storm under GC pressure: two native threads release objects owned by the main
// thread and by two Workers, one call per object, so wakes arrive without pause (the main
// thread's from its waker, the Workers' relayed by it), while the JS thread allocates
// heavily and forces collections. This is the use of Bun's thread-safe callback that an
// open Bun report of heap corruption (oven-sh/bun#41857) would hit; it runs on every
// runtime. Every handler must run exactly once, and the process must live.
//
// CI runs it for a few seconds; REFSCOPE_STORM_SECONDS=600 runs the long form.
import process from "node:process";
import { Counter } from "../mod.ts";
import { suite, until } from "./_harness.ts";
import { collectGarbage, ReleaseJob } from "./_native.ts";
import { Peer } from "./_workers.ts";

const seconds = Number(process.env.REFSCOPE_STORM_SECONDS ?? 3);
const mainObjects = 4000;
const workerObjects = 1000;

suite("a wake storm under GC pressure", async (t) => {
  const counter = new Counter();
  const peers = [new Peer(), new Peer()];
  for (const peer of peers) await peer.call("attach", counter.key);
  // Counted per handler (a flag each): a long storm's ids would overflow a Set.
  let ran = 0;
  let repeats = 0;
  let garbage: object[] = [];
  let rounds = 0;
  let released = 0;
  let collections = 0;
  let failedReleases = 0;
  const end = performance.now() + seconds * 1000;
  while (rounds === 0 || performance.now() < end) {
    const ids: number[] = [];
    for (let index = 0; index < mainObjects; index++) {
      const ref = counter.create();
      let fired = false;
      ref.onOutOfScope((id) => {
        if (fired) repeats++;
        else ran++;
        fired = true;
        garbage.push({ id, payload: new Array(8).fill(id) }); // Allocation inside handlers too.
      });
      ids.push(ref.id);
    }
    for (const peer of peers) ids.push(...await peer.call<number[]>("createMany", workerObjects));
    // Two native threads, one release call per object, interleaving owners.
    const half = ids.length >> 1;
    const jobs = [new ReleaseJob(counter, ids.slice(0, half), 1), new ReleaseJob(counter, ids.slice(half), 1)];
    released += ids.length;
    const target = (rounds + 1) * mainObjects;
    await until(
      () => {
        // Heavy allocation, and a forced collection now and then, while wakes arrive.
        for (let index = 0; index < 2000; index++) garbage.push({ index, text: `garbage ${index}` });
        if (garbage.length > 200_000) {
          garbage = [];
          collectGarbage();
          collections++;
        }
        return ran >= target && jobs.every((job) => job.done);
      },
      "the main thread's handlers",
      30_000,
    );
    for (const job of jobs) if (job.join().firstError !== 0) failedReleases++;
    rounds++;
  }
  const workerTarget = rounds * workerObjects;
  // The Workers' handlers run on their threads: ask until each has run all, 30 s at most.
  type Counted = { ran: number; repeats: number };
  let counts: Counted[] = [];
  const deadline = performance.now() + 30_000;
  while (true) {
    counts = await Promise.all(peers.map((peer) => peer.call<Counted>("counted")));
    if (counts.every((count) => count.ran >= workerTarget) || performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.eq(failedReleases, 0, "every native release succeeded, in every round");
  t.eq(
    [ran, repeats],
    [rounds * mainObjects, 0],
    `the main thread's ${rounds * mainObjects} handlers ran once each`,
  );
  t.eq(
    counts,
    peers.map(() => ({ ran: workerTarget, repeats: 0 })),
    `each Worker's ${workerTarget} handlers ran once each (relayed wakes)`,
  );
  t.ok(
    true,
    `${rounds} rounds in ${seconds} s: ${released} native releases, ${collections} forced collections, the process alive`,
  );
  for (const peer of peers) await peer.call("close");
  for (const peer of peers) peer.terminate();
  await counter.close();
}, 120_000 + seconds * 1500);
