// Out-of-scope handlers: Ray's scenarios for this feature (core_worker_test.cc and
// test_object_out_of_scope_callback.py in ray-project/ray#64011), plus ordering and
// exactly-once under batch release and free.
import { setImmediate } from "node:timers";
import { Counter, HandlerError, type ObjectId, RefscopeError } from "../mod.ts";
import { macrotasks, suite, until, within } from "./_harness.ts";
import { handlerShapes } from "./fixtures/handler-shapes.ts";

suite("out-of-scope handlers", async (t) => {
  await t.test("the handler fires when the last reference is dropped (Ray: fire on del ref)", async (t) => {
    await using counter = new Counter();
    const ref = counter.create({ sizeBytes: 10 });
    const second = ref.retain();
    const fired: ObjectId[] = [];
    t.ok(ref.onOutOfScope((id) => void fired.push(id)), "registration on a live object returns true");
    ref.release();
    await macrotasks(5);
    t.eq(fired, [], "one reference left: nothing fires");
    second.release();
    await until(() => fired.length === 1, "the handler");
    t.eq(fired, [ref.id], "fires once, with the object's id");
    t.eq(counter.info(ref), undefined, "the object is deleted");
    t.eq(counter.liveObjects, 0, "nothing is live");
  });

  await t.test("registration returns false for unknown (deleted) and freed objects (Ray: false return)", async (t) => {
    await using counter = new Counter();
    const gone = counter.create();
    const goneId = gone.id;
    gone.release();
    t.eq(counter.onOutOfScope(goneId, () => {}), false, "deleted object: false");

    const freed = counter.create();
    freed.free();
    t.eq(freed.onOutOfScope(() => {}), false, "freed object: false");
    t.eq(counter.stats().pendingHandlers, 0, "a refused registration holds no handler");
    freed.release();

    // A number that was never an id is a caller bug, not an "unknown object".
    t.throws(() => counter.onOutOfScope(12345, () => {}), RefscopeError, "a forged id throws");
  });

  await t.test("free triggers the handlers at once and only once (Ray: ray.internal.free)", async (t) => {
    await using counter = new Counter();
    const ref = counter.create({ sizeBytes: 5 });
    let fired = 0;
    ref.onOutOfScope(() => void fired++);
    ref.free();
    await until(() => fired === 1, "the handler after free");
    const info = counter.info(ref);
    t.ok(info?.freed, "the entry stays, marked freed");
    t.eq(info?.localRefs, 1, "its reference is still held");
    ref.free();
    ref.release();
    await macrotasks(5);
    t.eq(fired, 1, "neither a second free nor the last release fires again");
    t.eq(counter.info(ref.id), undefined, "the entry goes when its references drop");
  });

  await t.test("everyday handler shapes, returning anything, type-check and run once each", async (t) => {
    await using counter = new Counter();
    const seen = new Map<string, ObjectId>();
    const shapes = handlerShapes(seen);
    const refs = Object.values(shapes).map((handler) => {
      const ref = counter.create();
      t.ok(ref.onOutOfScope(handler), "registered");
      return ref;
    });
    const errors: HandlerError[] = [];
    counter.onHandlerError = (error) => void errors.push(error);
    counter.releaseAll(refs);
    await until(() => seen.size === refs.length, "every shape's handler");
    t.eq([...seen.keys()].sort(), Object.keys(shapes).sort(), "each ran");
    t.eq(counter.stats().handlersFired, refs.length, "once each");
    t.eq(errors, [], "whatever they return, none is an error");
  });

  await t.test("handlers run in registration order (Ray: multiple callbacks all fire)", async (t) => {
    await using counter = new Counter();
    const ref = counter.create();
    const order: number[] = [];
    for (let index = 0; index < 5; index++) ref.onOutOfScope(() => void order.push(index));
    ref.release();
    await until(() => order.length === 5, "five handlers");
    t.eq(order, [0, 1, 2, 3, 4], "in registration order");
  });

  await t.test("2000 references dropped at once: each handler fires exactly once", async (t) => {
    await using counter = new Counter();
    const counts = new Map<ObjectId, number>();
    const refs = Array.from({ length: 2000 }, () => {
      const ref = counter.create({ sizeBytes: 1 });
      ref.onOutOfScope((id) => void counts.set(id, (counts.get(id) ?? 0) + 1));
      return ref;
    });
    // Half one by one, half in one batch call.
    for (const ref of refs.slice(0, 1000)) ref.release();
    counter.releaseAll(refs.slice(1000));
    await until(() => counts.size === 2000, "2000 handlers");
    await macrotasks(5);
    t.eq(counts.size, 2000, "every object reported");
    t.ok([...counts.values()].every((count) => count === 1), "each exactly once");
    t.eq(counter.stats().handlersFired, 2000, "stats agree");
    t.eq(counter.liveObjects, 0, "nothing is live");
  });

  await t.test("an exception in one handler does not stop the next (Ray: exception safety)", async (t) => {
    const reported: HandlerError[] = [];
    await using counter = new Counter({ onHandlerError: (error) => void reported.push(error) });
    const ref = counter.create();
    const ran: string[] = [];
    ref.onOutOfScope(() => {
      ran.push("first");
      throw new Error("boom");
    });
    ref.onOutOfScope(() => void ran.push("second"));
    const other = counter.create();
    other.onOutOfScope(async () => {
      await Promise.resolve();
      throw new Error("async boom");
    });
    other.onOutOfScope(() => void ran.push("third"));
    ref.release();
    other.release();
    await until(() => reported.length === 2, "both errors reported");
    t.eq(ran, ["first", "second", "third"], "later handlers still ran");
    t.ok(reported[0] instanceof HandlerError, "a HandlerError reaches the hook");
    t.eq(reported[0].objectId, ref.id, "it names the object");
    t.ok(reported[0].message.includes(String(ref.id)), "its message has the object id");
    t.eq((reported[0].cause as Error).message, "boom", "the thrown error is its cause");
    t.eq(reported[1].objectId, other.id, "a rejected promise is reported too");
    t.eq(counter.stats().handlerErrors, 2, "counted in stats");
  });

  await t.test("without a hook, a handler error is logged with the object id", async (t) => {
    await using counter = new Counter();
    const logged: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
    try {
      const ref = counter.create();
      ref.onOutOfScope(() => {
        throw new Error("logged boom");
      });
      ref.release();
      await until(() => logged.length === 1, "the log line");
      t.ok(logged[0].includes(`object ${ref.id}`), "the log line names the object");
    } finally {
      console.error = original;
    }
  });

  await t.test("a release's handlers run in a microtask it queues: after the release, before any macrotask", async (t) => {
    await using counter = new Counter();
    const ref = counter.create();
    let releasing = false;
    let earlierMicrotaskRan = false;
    let macrotaskRan = false;
    let ranInside = false;
    let ranAfterEarlierMicrotasks = false;
    let ranBeforeMacrotasks = false;
    const fired = Promise.withResolvers<void>();
    ref.onOutOfScope(() => {
      ranInside = releasing;
      ranAfterEarlierMicrotasks = earlierMicrotaskRan;
      ranBeforeMacrotasks = !macrotaskRan;
      fired.resolve();
    });
    queueMicrotask(() => void (earlierMicrotaskRan = true));
    setImmediate(() => void (macrotaskRan = true));
    releasing = true;
    ref.release();
    releasing = false;
    await within(fired.promise, 5000, "the handler");
    t.notOk(ranInside, "not inside release()");
    t.ok(ranAfterEarlierMicrotasks, "after the microtasks queued before the release");
    t.ok(ranBeforeMacrotasks, "before a macrotask queued before the release (the application's queued work)");
  });

  await t.test("a long burst of deliveries yields to the event loop: a timer set before it fires during it", async (t) => {
    await using counter = new Counter();
    const objects = 100_000;
    const refs = Array.from({ length: objects }, () => counter.create());
    let ran = 0;
    const all = Promise.withResolvers<void>();
    for (const ref of refs) {
      ref.onOutOfScope(() => {
        // About 2 µs of work a handler: the burst lasts about 200 ms.
        const end = performance.now() + 0.002;
        while (performance.now() < end) { /* work */ }
        if (++ran === objects) all.resolve();
      });
    }
    let ranWhenTimerFired = -1;
    const timer = Promise.withResolvers<void>();
    setTimeout(() => {
      ranWhenTimerFired = ran;
      timer.resolve();
    }, 0);
    counter.releaseAll(refs);
    await within(Promise.all([all.promise, timer.promise]), 60_000, "the burst and the timer");
    t.ok(ranWhenTimerFired > 0, `the burst started first (${ranWhenTimerFired} handlers had run)`);
    t.ok(
      ranWhenTimerFired < objects,
      `the timer fired during the burst, after ${ranWhenTimerFired} of ${objects} handlers`,
    );
    t.eq(ran, objects, "and every handler ran, once");
  });

  await t.test("a handler may use the counter re-entrantly", async (t) => {
    await using counter = new Counter();
    let depth = 0;
    let deletedBeforeHandler = true;
    const done = Promise.withResolvers<void>();
    const chain = (id: ObjectId) => {
      depth++;
      deletedBeforeHandler &&= counter.info(id) === undefined;
      if (depth === 50) return done.resolve();
      const next = counter.create();
      next.onOutOfScope(chain);
      next.release();
    };
    const first = counter.create();
    first.onOutOfScope(chain);
    first.release();
    await within(done.promise, 5000, "a chain of 50 handlers");
    t.eq(depth, 50, "each handler created, registered and released the next object");
    t.ok(deletedBeforeHandler, "each object was already deleted when its handler ran");
    t.eq(counter.liveObjects, 0, "nothing is live");
  });
});
