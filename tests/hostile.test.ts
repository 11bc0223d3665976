// Hostile values from callers, each a failure a hostile pass found: handlers whose failure
// a console cannot show or `instanceof Promise` cannot see, options and arrays whose
// getters answer differently on a second read, and -0 where a u32 crosses the FFI. Each
// must end in a reported error or a RefscopeError, with nothing lost and the table intact.
import { Counter, RefscopeError } from "../mod.ts";
import { runScript, suite, testPath } from "./_harness.ts";

function codeOf(call: () => unknown): string {
  try {
    call();
    return "no error";
  } catch (error) {
    return error instanceof RefscopeError ? error.code : `not a RefscopeError: ${error}`;
  }
}

suite("hostile input", async (t) => {
  for (const mode of ["log", "hook"] as const) {
    await t.test(
      `handlers throwing a revoked Proxy, rejecting from another realm or as a thenable (${
        mode === "hook" ? "a hook that throws a revoked Proxy" : "logged, no hook"
      }): every handler runs, every failure is reported, the process lives`,
      (t) => {
        const result = runScript(testPath("fixtures/hostile-handlers.ts"), {}, 30_000, [mode]);
        t.eq(result.status, 0, `the process exits cleanly (stderr: ${JSON.stringify(result.stderr.slice(-300))})`);
        const report = JSON.parse(result.stdout.trim().split("\n").pop() || "{}");
        t.eq(report.ran, 12, "all 12 handlers of the batch ran");
        t.eq(report.handlerErrors, 9, "the 9 failures were counted: 3 thrown, 3 from another realm, 3 thenables");
        t.eq(report.hookCalls, mode === "hook" ? 9 : 0, mode === "hook" ? "the hook heard of all 9" : "no hook");
      },
    );
  }

  await t.test("options are read once: a getter cannot pass validation with one value and be used with another", async (t) => {
    const opener = new Counter();
    let reads = 0;
    const counted = {
      get onHandlerError() {
        reads++;
        return undefined;
      },
    };
    const attached = Counter.attach(opener.key, counted);
    t.eq(reads, 1, "Counter.attach reads onHandlerError once");
    reads = 0;
    const own = new Counter(counted);
    t.eq(reads, 1, "new Counter reads it once");
    await own.close();

    let answers = 0;
    const flaky = {
      get onHandlerError() {
        return answers++ === 0 ? undefined : 42;
      },
    };
    const flakyCounter = new Counter(flaky as never);
    t.eq(flakyCounter.onHandlerError, undefined, "what was checked (undefined) is what is used, never 42");
    await flakyCounter.close();

    let throwingReads = 0;
    const throwsLater = {
      get onHandlerError() {
        if (++throwingReads > 1) throw new Error("a second read");
        return undefined;
      },
    };
    const later = Counter.attach(opener.key, throwsLater);
    t.eq(throwingReads, 1, "an attach whose getter would throw on a second read succeeds, reading once");
    const throwing = {
      get onHandlerError(): undefined {
        throw new Error("the getter throws");
      },
    };
    t.eq(
      codeOf(() => Counter.attach(opener.key, throwing)),
      "not a RefscopeError: Error: the getter throws",
      "a throwing getter's error reaches the caller",
    );
    t.eq(opener.stats().openSinks, 3, "and nothing was attached for it (the opener, two attached)");
    const next = new Counter();
    t.ok(next.key !== opener.key, "the next new Counter() on this thread opens a counter of its own");
    await next.close();
    await later.close();
    await attached.close();
    await opener.close();
  });

  await t.test("releaseAll reads each element once: a refused call re-arms exactly the Refs it took", async (t) => {
    const counter = new Counter();
    const a = counter.create();
    const b = counter.create();
    const gone = counter.create();
    gone.release();
    let reads = 0;
    const list = [a, b, gone];
    Object.defineProperty(list, 0, {
      get: () => (reads++ === 0 ? a : b),
    });
    t.eq(codeOf(() => counter.releaseAll(list)), "NO_REFERENCE", "the call is refused (one Ref is already released)");
    t.eq(reads, 1, "element 0 was read once");
    t.eq(counter.liveObjects, 2, "nothing was released");
    t.eq(codeOf(() => a.release()), "no error", "the Ref taken at index 0 is held again, and releases");
    t.eq(codeOf(() => b.release()), "no error", "the other one too");
    t.eq(codeOf(() => b.release()), "NO_REFERENCE", "once");
    t.eq(counter.liveObjects, 0, "no reference is stuck");
    await counter.close();
  });

  await t.test("borrow reads each LentRef field once, and -0 as a lender is a RefscopeError", async (t) => {
    const counter = new Counter();
    const x = counter.create();
    const y = counter.create();
    const lentX = x.retain().lend();
    const reads = new Map<string, number>();
    const lent = { ...lentX };
    for (const field of ["key", "id", "lender", "generation"] as const) {
      const value = lentX[field];
      Object.defineProperty(lent, field, {
        get: () => {
          const count = (reads.get(field) ?? 0) + 1;
          reads.set(field, count);
          return field === "id" && count > 1 ? y.id : value;
        },
      });
    }
    const borrowed = counter.borrow(lent);
    t.eq([...reads.values()], [1, 1, 1, 1], "each field read once");
    t.eq(borrowed.id, x.id, "the Ref names the object that was claimed");
    t.eq(counter.sink, 0, "this thread lends as sink 0");
    const again = counter.borrow({ ...x.retain().lend(), lender: -0 });
    t.eq(again.id, x.id, "-0 as a lender names sink 0, as 0 does (on Deno it was a TypeError from the FFI)");
    t.eq(
      codeOf(() => counter.borrow({ ...y.retain().lend(), lender: -0, generation: -0 + 7 })),
      "NO_REFERENCE",
      "and a wrong generation with it is a RefscopeError",
    );
    again.release();
    borrowed.release();
    await counter.close();
  });
});
