// One counter shared by real Workers (Ray's borrowers across workers): references handed
// over with lend/borrow, owners' handlers waiting for every borrower and running on the
// owner's thread, chains of three participants, and a Worker terminated with references
// still borrowed.
import { readdirSync, readFileSync } from "node:fs";
import { Counter, type LentRef, type ObjectId } from "../mod.ts";
import { macrotasks, runtime, suite, until } from "./_harness.ts";
import { Peer, type RemoteError } from "./_workers.ts";

/** Runs `body` with `count` attached Worker peers, terminating them whatever happens. */
async function withPeers(counter: Counter, count: number, body: (peers: Peer[]) => Promise<void>): Promise<void> {
  const peers = Array.from({ length: count }, () => new Peer());
  try {
    for (const peer of peers) peer.sink = await peer.call<number>("attach", counter.key);
    await body(peers);
  } finally {
    for (const peer of peers) peer.terminate();
  }
}

async function remoteCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as RemoteError).code;
  }
}

suite("Workers sharing one counter", async (t) => {
  await t.test("TestSimpleBorrower: the owner's handler waits for a Worker borrower and runs on the owner", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 1, async ([worker]) => {
      const ref = counter.create({ sizeBytes: 64 });
      const fired: ObjectId[] = [];
      ref.onOutOfScope((id) => void fired.push(id));
      const id = await worker.call<ObjectId>("borrow", ref.lend());
      t.eq(id, ref.id, "the Worker borrowed the object");
      await macrotasks(5);
      t.eq(fired, [], "the owner let go (lent its reference), the borrower keeps it in scope");
      t.eq(counter.info(ref.id)?.borrowers, 1, "one borrower");
      t.eq(await remoteCode(worker.call("onOutOfScope", id)), "NOT_OWNED", "the borrower may not register");
      t.eq(await remoteCode(worker.call("free", id)), "NOT_OWNED", "nor free");
      await worker.call("release", id);
      await until(() => fired.length === 1, "the owner's handler");
      t.eq(fired, [ref.id], "fired once the borrower released, on the owner's thread");
      t.eq(worker.events.length, 0, "nothing ran in the Worker");
      t.eq(counter.liveObjects, 0, "nothing is left live");
      await worker.call("close");
    });
    await counter.close();
  });

  await t.test("TestBorrowerTree: owner → Worker A → Worker B; the handler waits for the last", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 2, async ([a, b]) => {
      const ref = counter.create();
      let fired = 0;
      ref.onOutOfScope(() => void fired++);
      const id = await a.call<ObjectId>("borrow", ref.lend());
      await a.call("retain", id);
      const onward = await a.call<LentRef>("lend", id);
      await b.call("borrow", onward);
      t.eq(counter.info(id)?.borrowers, 2, "two borrowers");
      t.eq(await remoteCode(b.call("borrow", onward)), "NO_REFERENCE", "a lent reference is claimed once");
      await a.call("release", id);
      await macrotasks(5);
      t.eq(fired, 0, "A let go; B still holds it");
      await b.call("release", id);
      await until(() => fired === 1, "the owner's handler");
      t.eq(counter.liveObjects, 0, "nothing is left live");
      await a.call("close");
      await b.call("close");
    });
    await counter.close();
  });

  await t.test("a Worker's own object: its handlers run in that Worker, after the main thread lets go", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 1, async ([worker]) => {
      const id = await worker.call<ObjectId>("create", 128);
      const borrowed = counter.borrow(await worker.call<LentRef>("lend", id));
      t.eq(counter.info(borrowed)?.owned, false, "the main thread borrows it");
      t.eq(counter.info(borrowed)?.owner, worker.sink, "owned by the Worker's participant");
      await macrotasks(5);
      t.eq(worker.events.length, 0, "still in scope");
      borrowed.release();
      await worker.event("outOfScope", id);
      await worker.event("deleted", id);
      t.eq(
        worker.events.map((event) => event.event),
        ["outOfScope", "deleted"],
        "both handlers ran in the Worker, in order",
      );
      t.eq(counter.liveObjects, 0, "nothing is left live");
      await worker.call("close");
    });
    await counter.close();
  });

  await t.test("TestSimpleBorrowerFailure: a terminated Worker's references are released on its behalf", async (t) => {
    const counter = new Counter();
    const ref = counter.create();
    let fired = 0;
    ref.onOutOfScope(() => void fired++);
    const worker = new Peer();
    await worker.call("attach", counter.key);
    const id = await worker.call<ObjectId>("borrow", ref.lend());
    await worker.call("retain", id); // Two references, never released by the Worker itself.
    t.eq(counter.stats().openSinks, 2, "two participants");
    worker.terminate();
    // The Worker's thread exits; librefscope's thread-exit hook closes its sink.
    await until(() => fired === 1, "the owner's handler after the Worker ended", 15_000);
    t.eq(counter.stats().openSinks, 1, "the Worker's participation ended");
    t.eq(counter.liveObjects, 0, "nothing stays pinned by the dead Worker");
    await counter.close();
  });

  await t.test("a Worker that closes releases what it holds; its own handlers fire in it first", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 1, async ([worker]) => {
      const mine = counter.create();
      let fired = 0;
      mine.onOutOfScope(() => void fired++);
      const borrowedId = await worker.call<ObjectId>("borrow", mine.lend());
      const ownId = await worker.call<ObjectId>("create", 1);
      await worker.call("close");
      t.ok(
        worker.events.some((event) => event.event === "outOfScope" && event.id === ownId),
        "its own object's handler ran in the Worker before its close resolved",
      );
      await until(() => fired === 1, "the owner's handler for what the Worker borrowed");
      t.eq(borrowedId, mine.id, "the borrowed object went out of scope");
      t.eq(counter.liveObjects, 0, "nothing is left live");
    });
    await counter.close();
  });

  await t.test("the opener's close delivers a Worker's handlers in the Worker", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 1, async ([worker]) => {
      const id = await worker.call<ObjectId>("create", 1);
      await counter.close();
      await worker.event("outOfScope", id);
      await worker.event("deleted", id);
      t.ok(true, "the Worker's handlers ran when the opener closed the counter");
      t.eq(await remoteCode(worker.call("create", 1)), "CLOSED", "the Worker's later calls get CLOSED");
      await worker.call("close");
    });
  });

  await t.test("a Worker's dispose and runTask survive the opener closing the counter", async (t) => {
    const counter = new Counter();
    await withPeers(counter, 1, async ([worker]) => {
      const holding = worker.call<string>("holdAcross", 200);
      // Close only once the Worker holds its references (a slow machine may take a while).
      await until(() => worker.events.some((e) => e.event === "holding"), "the Worker to hold its references");
      await counter.close();
      t.eq(await holding, "resolved", "the Worker's runTask resolved, its `using` Ref disposed quietly");
      await worker.call("close");
    });
  });

  await t.test("a Worker that opened counters and was terminated leaves no dispatcher thread behind", async (t) => {
    // librefscope names its threads (Linux): its dispatchers and wakers, not the runtime's.
    const threads = () =>
      readdirSync("/proc/self/task").filter((task) => {
        try {
          return readFileSync(`/proc/self/task/${task}/comm`, "utf8").startsWith("refscope-");
        } catch {
          return false; // It exited meanwhile.
        }
      }).length;
    const before = threads();
    const workers = 8;
    for (let index = 0; index < workers; index++) {
      const peer = new Peer();
      await peer.call("openOwn");
      peer.terminate();
    }
    // Each would leak a dispatcher thread if its counter outlived its Worker.
    await until(() => threads() === before, `librefscope's threads to return to ${before}`, 15_000);
    t.eq(threads(), before, `librefscope's threads went back to ${before} after ${workers} Worker openers`);
  });

  await t.test("TestSimpleBorrowerFailure (busy): a Worker terminated while a wake to it is blocked stalls nothing", async (t) => {
    const counter = new Counter();
    const worker = new Peer();
    await worker.call("attach", counter.key);
    const id = await worker.call<ObjectId>("create", 1);
    const borrowed = counter.borrow(await worker.call<LentRef>("lend", id));
    const mine = counter.create();
    let mineFired = 0;
    mine.onOutOfScope(() => void mineFired++);
    await worker.call("busy", 2000);
    await macrotasks(5);
    borrowed.release(); // A wake is now owed to the busy Worker (on Deno, it blocks its waker).
    await new Promise((resolve) => setTimeout(resolve, 200));
    worker.terminate();
    mine.release();
    await until(() => mineFired === 1, "this thread's own handler");
    await counter.close();
    t.ok(true, "the counter stayed responsive and closed");
  });

  await t.test("a Worker terminated while it spins: its borrow is released when its thread ends, on Deno only once its code returns", async (t) => {
    const spinMs = 2000;
    const counter = new Counter();
    const worker = new Peer();
    await worker.call("attach", counter.key);
    const ref = counter.create();
    let releasedAt = 0;
    ref.onOutOfScope(() => void (releasedAt = performance.now()));
    await worker.call("borrow", ref.lend());
    await worker.call("busy", spinMs);
    await worker.event("busy", 0);
    const spinning = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 100));
    worker.terminate();
    await until(() => releasedAt > 0, "the owner's handler, once the Worker's thread ended");
    const afterMs = Math.round(releasedAt - spinning);
    if (runtime === "deno") {
      // Deno 2.9.6 cannot stop a Worker inside synchronous code: it ends when the code returns.
      t.ok(afterMs >= spinMs - 500, `released ${afterMs} ms into a ${spinMs}-ms spin: when the spin ended`);
    } else {
      t.ok(afterMs < spinMs - 500, `released ${afterMs} ms into a ${spinMs}-ms spin: at terminate()`);
    }
    await counter.close();
  });
});
