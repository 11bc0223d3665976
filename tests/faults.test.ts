// Faults in user code: handlers that throw or reject, re-enter refscope, close the counter,
// or take long. For each: no deadlock (every wait is bounded), no delivery lost or made
// twice (counted per handler), later handlers still run, and each error reaches the
// onHandlerError hook as a HandlerError naming the object.
import { Counter, HandlerError, type ObjectId, type Ref, RefscopeError } from "../mod.ts";
import { busy, macrotasks, suite, until, within } from "./_harness.ts";
import { ReleaseJob } from "./_native.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The first index whose count is not exactly 1, or -1 when every count is 1. */
function notOnce(counts: Uint8Array): number {
  return counts.findIndex((count) => count !== 1);
}

/** Counts deliveries by name; `note(name)` is a handler that counts under `name`. */
class Tally {
  readonly counts = new Map<string, number>();
  readonly order: string[] = [];

  note(name: string): () => void {
    return () => {
      this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      this.order.push(name);
    };
  }

  has(...names: string[]): boolean {
    return names.every((name) => this.counts.has(name));
  }
}

/** For subtests whose own bounds (`within`, `until`) exceed zora's default 5 s timeout. */
const generous = { timeout: 60_000 };

suite("faults in user code", async (t) => {
  await t.test(
    "throwing and rejecting handlers, released from JS and a native thread: each runs once, the rest still run, every error reaches onHandlerError with its object id",
    async (t) => {
      const errors: HandlerError[] = [];
      await using counter = new Counter({ onHandlerError: (error) => void errors.push(error) });
      const objects = 3000;
      const perObject = 4; // throws, rejects after a macrotask, returns a rejected promise, succeeds
      const runs = new Uint8Array(objects * perObject);
      const order: number[][] = Array.from({ length: objects }, () => []);
      const indexOf = new Map<ObjectId, number>();
      const refs: Ref[] = [];
      for (let index = 0; index < objects; index++) {
        const ref = counter.create({ sizeBytes: 16 });
        indexOf.set(ref.id, index);
        const ran = (handler: number) => {
          runs[index * perObject + handler]++;
          order[index].push(handler);
        };
        // Even objects fail with Errors, odd ones with other values (a string, undefined).
        ref.onOutOfScope((id) => {
          ran(0);
          throw index % 2 === 0 ? new Error(`sync ${id}`) : `sync ${id}`;
        });
        ref.onOutOfScope(async (id) => {
          ran(1);
          await sleep(0);
          throw new Error(`async ${id}`);
        });
        ref.onOutOfScope((id) => {
          ran(2);
          return Promise.reject(index % 2 === 0 ? new Error(`rejected ${id}`) : undefined);
        });
        ref.onOutOfScope(() => ran(3));
        refs.push(ref);
      }
      for (const ref of refs.slice(0, 1000)) ref.release();
      counter.releaseAll(refs.slice(1000, 2000));
      const job = new ReleaseJob(counter, refs.slice(2000).map((ref) => ref.id));
      const expectedErrors = objects * 3;
      await until(() => errors.length >= expectedErrors, `${expectedErrors} handler errors`, 20_000);
      t.eq(job.join().firstError, 0, "every native release succeeded");
      await macrotasks(10);

      t.eq(notOnce(runs), -1, `each of the ${objects * perObject} handlers ran exactly once`);
      t.ok(order.every((ran) => ran.join() === "0,1,2,3"), "in registration order, past the failing ones");
      t.eq(errors.length, expectedErrors, "one error per failing handler, none twice");
      t.ok(errors.every((error) => error instanceof HandlerError), "each is a HandlerError");
      const byObject = new Map<ObjectId, string[]>();
      for (const error of errors) {
        const cause = error.cause instanceof Error ? `Error: ${error.cause.message}` : String(error.cause);
        byObject.set(error.objectId, [...(byObject.get(error.objectId) ?? []), cause]);
      }
      const wrong = [...indexOf].find(([id, index]) => {
        const expected = index % 2 === 0
          ? [`Error: sync ${id}`, `Error: async ${id}`, `Error: rejected ${id}`]
          : [`sync ${id}`, `Error: async ${id}`, "undefined"];
        return (byObject.get(id) ?? []).sort().join("|") !== expected.sort().join("|");
      });
      t.eq(wrong, undefined, "each object's three errors carry its id and what its handlers threw, as cause");
      t.ok(
        errors.every((error) => error.message.includes(`object ${error.objectId}`)),
        "each message names the object",
      );
      const stats = counter.stats();
      t.eq([stats.handlerErrors, stats.handlersFired], [expectedErrors, objects * perObject], "stats agree");
      t.eq([stats.liveObjects, stats.pendingHandlers], [0, 0], "nothing is left live or pending");
    },
    generous,
  );

  await t.test(
    "a handler that throws or rejects a value String() refuses is reported too, and the rest of its batch still runs",
    async (t) => {
      // Such a value used to make the HandlerError constructor throw inside the drain: the
      // exception escaped, the process died, and the rest of the batch was lost.
      const errors: HandlerError[] = [];
      await using counter = new Counter({ onHandlerError: (error) => void errors.push(error) });
      const unprintable = [
        () => Object.create(null),
        () => ({
          toString() {
            throw new Error("toString failed");
          },
        }),
        () => ({ [Symbol.toPrimitive]: () => ({}) }),
      ];
      const runs = new Uint8Array(2 * 3 * unprintable.length);
      const thrown: unknown[] = [];
      const refs: Ref[] = [];
      for (const [kind, make] of unprintable.entries()) {
        for (let copy = 0; copy < 3; copy++) {
          const slot = 2 * (3 * kind + copy);
          const ref = counter.create();
          ref.onOutOfScope(() => {
            runs[slot]++;
            const value = make();
            thrown.push(value);
            if (copy === 1) return Promise.reject(value);
            throw value;
          });
          ref.onOutOfScope(() => void runs[slot + 1]++);
          refs.push(ref);
        }
      }
      counter.releaseAll(refs);
      await until(() => errors.length === refs.length, `${refs.length} reported errors`);
      await macrotasks(5);
      t.eq(notOnce(runs), -1, "every handler ran exactly once");
      t.ok(
        errors.every((error) => thrown.includes(error.cause)),
        "each HandlerError carries the thrown value as cause",
      );
      t.eq(
        errors.map((error) => error.objectId).sort(),
        refs.map((ref) => ref.id).sort(),
        "and names its object",
      );
      t.ok(
        errors.every((error) => error.message.includes(`object ${error.objectId}`)),
        "its message names the object too",
      );
    },
  );

  await t.test(
    "an onHandlerError hook that throws, or an async one that rejects, is logged; later handlers still run once",
    async (t) => {
      // An async hook's rejection used to go unhandled, which ends the process on Deno.
      const hooks = {
        throwing: () => {
          throw new Error("the hook failed");
        },
        rejecting: async () => {
          await null;
          throw new Error("the async hook failed");
        },
      };
      const logged: string[] = [];
      const original = console.error;
      console.error = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
      try {
        for (const [name, hook] of Object.entries(hooks)) {
          logged.length = 0;
          await using counter = new Counter({ onHandlerError: hook });
          const runs = new Uint8Array(20);
          const refs = Array.from({ length: 10 }, (_, index) => {
            const ref = counter.create();
            ref.onOutOfScope(() => {
              runs[2 * index]++;
              throw new Error("handler failed");
            });
            ref.onOutOfScope(() => void runs[2 * index + 1]++);
            return ref;
          });
          counter.releaseAll(refs);
          await until(
            () => logged.length === 10 && runs.every((count) => count > 0),
            `10 logged ${name} hook failures`,
          );
          await macrotasks(5);
          t.eq(notOnce(runs), -1, `${name} hook: every handler ran exactly once`);
          t.eq(logged.length, 10, `${name} hook: one log line per failure`);
          t.ok(
            logged.every((line, index) =>
              line.includes("onHandlerError hook threw") && line.includes(`${refs[index].id}`)
            ),
            `${name} hook: each line says the hook failed and names the object`,
          );
        }
      } finally {
        console.error = original;
      }
    },
  );

  await t.test(
    "a handler may create, retain, release, register, unregister and free: each handler that results runs exactly once",
    async (t) => {
      const errors: HandlerError[] = [];
      await using counter = new Counter({ onHandlerError: (error) => void errors.push(error) });
      const tally = new Tally();
      const trigger = counter.create();
      const last = counter.create(); // its last reference is dropped inside the handler
      last.onOutOfScope(tally.note("last"));
      const kept = counter.create(); // retained inside, then its first Ref released: stays in scope
      kept.onOutOfScope(tally.note("kept"));
      const freed = counter.create(); // freed inside: its handler fires, its entry stays
      freed.onOutOfScope(tally.note("freed"));
      const later = counter.create(); // gets a handler inside, fires when released later
      const removed = counter.create(); // its handler is removed inside: never runs
      const removedHandler = tally.note("removed");
      removed.onOutOfScope(removedHandler);
      const pair = [counter.create(), counter.create()]; // released with releaseAll inside
      pair[0].onOutOfScope(tally.note("pair 0"));
      pair[1].onOutOfScope(tally.note("pair 1"));

      const inside: Record<string, unknown> = {};
      let retained: Ref | undefined;
      trigger.onOutOfScope((id) => {
        tally.note("trigger")();
        inside.ownRegistration = counter.onOutOfScope(id, tally.note("never"));
        inside.ownInfo = counter.info(id);
        inside.lastAdded = last.onOutOfScope(tally.note("last, added inside"));
        last.release();
        retained = kept.retain();
        kept.release();
        freed.free();
        inside.laterAdded = later.onOutOfScope(tally.note("later"));
        inside.removed = removed.offOutOfScope(removedHandler);
        counter.releaseAll(pair);
        const created = counter.create({ sizeBytes: 7 });
        created.onOutOfScope(tally.note("created"));
        created.onDeleted(tally.note("created, deleted"));
        created.release();
      });
      trigger.release();
      const now = ["trigger", "last", "last, added inside", "freed", "pair 0", "pair 1", "created", "created, deleted"];
      await until(() => tally.has(...now), "the handlers the first one caused");
      await macrotasks(5);
      t.eq(inside, {
        ownRegistration: false,
        ownInfo: undefined,
        lastAdded: true,
        laterAdded: true,
        removed: true,
      }, "inside: its own object is deleted (registration false), the others accept and remove handlers");
      t.eq([...tally.counts.keys()].sort(), [...now].sort(), "exactly the handlers made due inside ran");
      t.ok(
        tally.order.indexOf("last") < tally.order.indexOf("last, added inside"),
        "a handler added inside runs after the object's earlier ones",
      );
      t.eq(counter.info(kept)?.localRefs, 1, "the retained object stays in scope");
      t.ok(counter.info(freed)?.freed, "the freed object keeps its entry");

      retained!.release();
      later.release();
      removed.release();
      freed.release();
      await until(() => tally.has("kept", "later"), "the handlers of objects released afterwards");
      await macrotasks(5);
      t.ok([...tally.counts.values()].every((count) => count === 1), "every handler ran exactly once");
      t.notOk(tally.has("removed") || tally.has("never"), "the removed and refused handlers never ran");
      t.eq(errors, [], "no handler failed");
      t.eq(counter.liveObjects, 0, "nothing is left live");
    },
    generous,
  );

  await t.test("a handler cannot cancel the handlers due with it: offOutOfScope inside returns false, they still run once", async (t) => {
    await using counter = new Counter();
    const tally = new Tally();
    const removed: boolean[] = [];
    const [deleted, freed] = [counter.create(), counter.create()];
    for (const [name, ref] of [["deleted", deleted], ["freed", freed]] as const) {
      const second = tally.note(`${name}: second`);
      ref.onOutOfScope((id) => {
        tally.note(`${name}: first`)();
        removed.push(counter.offOutOfScope(id, second));
      });
      ref.onOutOfScope(second);
    }
    deleted.release();
    freed.free();
    await until(() => tally.counts.size === 4, "both objects' handlers");
    await macrotasks(5);
    t.eq(removed, [false, false], "removing a handler already due returns false (deleted or freed object)");
    t.eq(
      tally.order,
      ["deleted: first", "deleted: second", "freed: first", "freed: second"],
      "each ran once, in order",
    );
    freed.release();
  });

  await t.test(
    "handlers that each drop the last references of 8 more objects: all 4681 of the tree run exactly once",
    async (t) => {
      await using counter = new Counter();
      const fanOut = 8;
      const total = 1 + 8 + 64 + 512 + 4096; // more than one 4096-token drain
      const runs = new Uint8Array(total);
      const refs: Ref[] = [];
      for (let index = 0; index < total; index++) {
        const ref = counter.create({ sizeBytes: 1 });
        refs.push(ref);
        ref.onOutOfScope(() => {
          runs[index]++;
          const first = fanOut * index + 1;
          if (first >= total) return;
          const children = refs.slice(first, first + fanOut);
          if (index % 2 === 0) counter.releaseAll(children);
          else for (const child of children) child.release();
        });
      }
      refs[0].release();
      await until(() => runs.every((count) => count > 0), `${total} handlers`, 20_000);
      await macrotasks(5);
      t.eq(notOnce(runs), -1, "each ran exactly once");
      t.eq(counter.liveObjects, 0, "nothing is left live");
    },
    generous,
  );

  await t.test(
    "a handler that closes the counter: the rest of its batch and the live objects' handlers each run once, close resolves",
    async (t) => {
      const errors: HandlerError[] = [];
      const counter = new Counter({ onHandlerError: (error) => void errors.push(error) });
      const released = 1000;
      const live = 500;
      const runs = new Uint8Array(released + live);
      let closing: Promise<void> | undefined;
      let ranAfterClose = 0;
      const refs = Array.from({ length: released + live }, (_, index) => {
        const ref = counter.create();
        ref.onOutOfScope(() => {
          runs[index]++;
          if (closing !== undefined) {
            ranAfterClose++;
            counter.create(); // refused: the counter is closing
          } else if (index === released / 2) {
            closing = counter.close();
          }
        });
        return ref;
      });
      counter.releaseAll(refs.slice(0, released));
      await until(() => closing !== undefined, "the closing handler");
      await within(closing!, 20_000, "close, called from a handler");
      t.eq(notOnce(runs), -1, `each of the ${released + live} handlers ran exactly once`);
      t.ok(counter.closed, "the counter is closed");
      t.is(counter.close(), closing, "close() again returns the same promise");
      t.ok(ranAfterClose >= live, `handlers still ran after close() (${ranAfterClose})`);
      t.eq(errors.length, ranAfterClose, "each of them had its refused call reported");
      t.ok(
        errors.every((error) => error.cause instanceof RefscopeError && error.cause.code === "CLOSED"),
        "as a HandlerError caused by CLOSED",
      );
      const stats = counter.stats();
      t.eq([stats.liveObjects, stats.pendingHandlers, stats.pendingTokens], [0, 0, 0], "nothing left at close");
    },
    generous,
  );

  await t.test("an async handler that awaits close() of its own counter completes: no deadlock", async (t) => {
    const counter = new Counter();
    const runs = new Uint8Array(101);
    const closer = counter.create();
    const done = Promise.withResolvers<boolean>();
    closer.onOutOfScope(async () => {
      runs[100]++;
      await counter.close();
      done.resolve(counter.closed);
    });
    for (let index = 0; index < 100; index++) counter.create().onOutOfScope(() => void runs[index]++);
    closer.release();
    t.ok(await within(done.promise, 20_000, "the handler's close"), "close resolved inside the handler");
    t.eq(notOnce(runs), -1, "every handler, the closer's and the live objects', ran exactly once");
  }, generous);

  await t.test(
    "a handler busy for 200 ms: native releases made meanwhile do not wait for it, and every handler then runs once",
    async (t) => {
      await using counter = new Counter();
      const objects = 1000;
      const runs = new Uint8Array(objects);
      const ids = Array.from({ length: objects }, (_, index) => {
        const ref = counter.create();
        ref.onOutOfScope(() => void runs[index]++);
        return ref.id;
      });
      const neighbours = Array.from({ length: 100 }, () => counter.create());
      const neighbourRuns = new Uint8Array(neighbours.length);
      neighbours.forEach((ref, index) => ref.onOutOfScope(() => void neighbourRuns[index]++));
      const slow = counter.create();
      let job: ReleaseJob | undefined;
      let finishedWhileBusy = false;
      let ranDuringBusy = -1;
      slow.onOutOfScope(() => {
        job = new ReleaseJob(counter, ids);
        busy(200, () => {
          finishedWhileBusy ||= job!.done;
        });
        ranDuringBusy = runs.reduce((sum, count) => sum + count, 0);
      });
      counter.releaseAll([slow, ...neighbours]); // the slow handler first, its batch behind it
      await until(() => runs.every((count) => count > 0), `${objects} handlers`, 20_000);
      t.eq(job!.join().firstError, 0, "every native release succeeded");
      await macrotasks(5);
      t.ok(finishedWhileBusy, "the native thread made all its releases while the handler was busy");
      t.eq(ranDuringBusy, 0, "no handler ran inside the busy one");
      t.eq(notOnce(runs), -1, "then each released object's handler ran exactly once");
      t.eq(notOnce(neighbourRuns), -1, "and so did each handler queued behind the slow one");
    },
    generous,
  );

  await t.test("async handlers awaiting 200 ms do not hold back later deliveries", async (t) => {
    const errors: HandlerError[] = [];
    await using counter = new Counter({ onHandlerError: (error) => void errors.push(error) });
    let slowStarted = 0;
    let slowFinished = 0;
    const slow = Array.from({ length: 10 }, () => counter.create());
    for (const ref of slow) {
      ref.onOutOfScope(async (id) => {
        slowStarted++;
        await sleep(200);
        slowFinished++;
        if (id === slow[0].id) throw new Error("failed after waiting");
      });
    }
    counter.releaseAll(slow);
    await until(() => slowStarted === 10, "the slow handlers to start");
    const quick = counter.create();
    const quickRan = Promise.withResolvers<number>();
    quick.onOutOfScope(() => quickRan.resolve(slowFinished));
    quick.release();
    t.eq(await within(quickRan.promise, 5000, "the quick handler"), 0, "a later handler ran while all ten waited");
    await until(() => slowFinished === 10 && errors.length === 1, "the slow handlers to finish");
    t.eq(errors[0].objectId, slow[0].id, "the one that failed after waiting is reported with its object id");
    t.eq(counter.stats().handlersFired, 11, "each handler ran once");
  });
});
