// The Counter API: counts, Refs and `using`, submitted-task references, batch release,
// stats, and the close lifecycle.
import { Counter, type ObjectId, RefscopeError } from "../mod.ts";
import { macrotasks, suite, until, within } from "./_harness.ts";

suite("counter", async (t) => {
  await t.test("local and submitted references both keep an object in scope (Ray: basic counting)", async (t) => {
    await using counter = new Counter();
    const ref = counter.create({ sizeBytes: 4096 });
    t.eq(counter.info(ref), {
      id: ref.id,
      owner: counter.sink,
      owned: true,
      localRefs: 1,
      submittedRefs: 0,
      borrowedRefs: 0,
      borrowers: 0,
      lentRefs: 0,
      lineageRefs: 0,
      containedIn: 0,
      pendingCallbacks: 0,
      pendingDeletedCallbacks: 0,
      freed: false,
      outOfScope: false,
      reconstructable: false,
      sizeBytes: 4096,
    }, "a new object holds one local reference");

    const second = ref.retain();
    t.ok(second !== ref && second.id === ref.id, "retain returns a new Ref to the same object");
    const task = counter.addSubmittedRefs([ref, ref.id]);
    t.eq(counter.info(ref)?.localRefs, 2, "two local references");
    t.eq(counter.info(ref)?.submittedRefs, 2, "two submitted references (a repeated id counts twice)");

    let fired = false;
    ref.onOutOfScope(() => void (fired = true));
    ref.release();
    second.release();
    await macrotasks(5);
    t.notOk(fired, "submitted references alone keep it in scope");
    t.eq(counter.info(ref)?.localRefs, 0, "no local references left");
    task.release();
    await until(() => fired, "the handler after the task released its references");
    t.eq(counter.liveObjects, 0, "nothing is live");
  });

  await t.test("runTask holds submitted references while an async task runs", async (t) => {
    await using counter = new Counter();
    const ref = counter.create();
    const gone = Promise.withResolvers<ObjectId>();
    ref.onOutOfScope(gone.resolve);
    const finish = Promise.withResolvers<void>();
    const running = counter.runTask([ref], async () => {
      await finish.promise;
      return "result";
    });
    ref.release();
    await macrotasks(5);
    t.eq(counter.info(ref)?.submittedRefs, 1, "the task holds a reference after the Ref is released");
    finish.resolve();
    t.eq(await running, "result", "runTask returns the task's result");
    t.eq(await within(gone.promise, 5000, "the handler"), ref.id, "out of scope once the task is done");

    const failing = counter.create();
    await t.test("a task that throws still releases its references", async (t) => {
      let error: unknown;
      try {
        await counter.runTask([failing], () => {
          throw new Error("task failed");
        });
      } catch (caught) {
        error = caught;
      }
      t.eq((error as Error).message, "task failed", "the task's error propagates");
      t.eq(counter.info(failing)?.submittedRefs, 0, "its submitted reference is gone");
      failing.release();
    });
  });

  await t.test("`using` releases a Ref at the end of its block", async (t) => {
    await using counter = new Counter();
    let id = 0;
    {
      using ref = counter.create();
      id = ref.id;
      t.eq(counter.info(id)?.localRefs, 1, "held inside the block");
    }
    t.eq(counter.info(id), undefined, "released (and deleted) after it");

    const explicit = counter.create();
    {
      using ref = explicit;
      ref.release();
    }
    t.ok(explicit.released, "disposing an already released Ref does nothing");
  });

  await t.test("releaseAll releases many Refs in one call, all or nothing", async (t) => {
    await using counter = new Counter();
    const refs = Array.from({ length: 10 }, () => counter.create({ sizeBytes: 1 }));
    const repeated = [refs[0], refs[1], refs[0]];
    t.throws(() => counter.releaseAll(repeated), RefscopeError, "a repeated Ref is refused");
    t.ok(!refs[0].released && !refs[1].released, "and nothing was released");
    t.eq(counter.liveObjects, 10, "all objects still live");

    counter.releaseAll(new Set(refs));
    t.ok(refs.every((ref) => ref.released), "every Ref is released");
    t.eq(counter.liveObjects, 0, "every object is deleted");
  });

  await t.test("stats count objects, bytes, registrations and deliveries", async (t) => {
    await using counter = new Counter();
    const a = counter.create({ sizeBytes: 100 });
    const b = counter.create({ sizeBytes: 23 });
    let fired = 0;
    a.onOutOfScope(() => void fired++);
    b.onOutOfScope(() => void fired++);
    let stats = counter.stats();
    t.eq([stats.liveObjects, stats.liveBytes, stats.objectsCreated], [2, 123, 2], "two objects, 123 bytes");
    t.eq([stats.callbacksRegistered, stats.pendingHandlers, stats.handlersFired], [2, 2, 0], "two handlers pending");
    a.release();
    await until(() => fired === 1, "a's handler");
    stats = counter.stats();
    t.eq([stats.liveObjects, stats.liveBytes], [1, 23], "a's bytes are gone");
    t.eq(
      [stats.callbacksReleased, stats.pendingHandlers, stats.handlersFired, stats.pendingTokens],
      [1, 1, 1, 0],
      "one fired",
    );
    b.release();
    await until(() => fired === 2, "b's handler");
  });

  await t.test("close delivers the handlers of live objects, then refuses every call", async (t) => {
    const counter = new Counter();
    const ids: ObjectId[] = [];
    const refs = Array.from({ length: 100 }, () => {
      const ref = counter.create({ sizeBytes: 8 });
      ref.onOutOfScope((id) => void ids.push(id));
      return ref;
    });
    const released = counter.create();
    let releasedFired = 0;
    released.onOutOfScope(() => void releasedFired++);
    released.release(); // Pending delivery at close: still delivered, once.

    const key = counter.key;
    const closing = counter.close();
    t.ok(counter.closed, "closed as soon as close() is called");
    t.eq(ids.length, 0, "no handler runs inside close()");
    t.is(counter.close(), closing, "close() again returns the same promise");
    await within(closing, 10_000, "close");
    t.eq(new Set(ids).size, 100, "every live object's handler ran");
    t.eq(ids.length, 100, "once each");
    t.eq(releasedFired, 1, "the pending delivery arrived once");
    t.eq(counter.stats().liveObjects, 0, "stats after close show nothing live");
    t.eq(counter.key, key, "the key is remembered, never read from freed native memory");

    for (
      const [what, call] of [
        ["create", () => counter.create()],
        ["retain", () => refs[0].retain()],
        ["onOutOfScope", () => counter.onOutOfScope(refs[0], () => {})],
        ["free", () => counter.free(refs[0])],
        ["info", () => counter.info(refs[0])],
        ["addSubmittedRefs", () => counter.addSubmittedRefs([refs[0]])],
      ] as const
    ) {
      try {
        call();
        t.fail(`${what} after close should throw`);
      } catch (error) {
        t.eq((error as RefscopeError).code, "CLOSED", `${what} after close throws CLOSED`);
      }
    }
    refs[2][Symbol.dispose](); // `using` blocks that outlive the counter must not throw.
    t.ok(refs[2].released, "disposing a Ref after close is quiet, and marks it released");
    // Nor must cleanup in `finally`: a release after close is as quiet as disposal.
    refs[0].release();
    counter.releaseAll([refs[1]]);
    t.ok(refs[0].released && refs[1].released, "release and releaseAll after close are quiet, and mark them released");
  });

  await t.test("handlers that use the counter during close get CLOSED, reported, not lost", async (t) => {
    const errors: string[] = [];
    const counter = new Counter({ onHandlerError: (error) => void errors.push((error.cause as RefscopeError).code) });
    const ref = counter.create();
    let ran = 0;
    ref.onOutOfScope(() => {
      ran++;
      counter.create();
    });
    ref.onOutOfScope(() => void ran++);
    await within(counter.close(), 10_000, "close");
    t.eq(ran, 2, "both handlers ran");
    t.eq(errors, ["CLOSED"], "the re-entrant create failed with CLOSED and was reported");
  });

  await t.test("await using closes the counter", async (t) => {
    let fired = false;
    let outer: Counter | undefined;
    {
      await using counter = new Counter();
      outer = counter;
      counter.create().onOutOfScope(() => void (fired = true));
    }
    t.ok(outer.closed, "closed at the end of the block");
    t.ok(fired, "and the live object's handler ran");
  });

  await t.test("many counters open and close independently", async (t) => {
    const counters = Array.from({ length: 8 }, () => new Counter());
    let fired = 0;
    for (const counter of counters) counter.create().onOutOfScope(() => void fired++);
    await within(Promise.all(counters.map((counter) => counter.close())), 10_000, "eight closes");
    t.eq(fired, 8, "one handler per counter");
  });
});
