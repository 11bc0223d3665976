// Ray's reference_counter_test.cc scenarios through the TS API, one JS thread (a second
// participant attaches on the same thread where a borrower is needed; workers.test.ts does
// it across Workers). Every test ends with nothing live, as Ray's TearDown checks.
import { Counter, formatSnapshot, type ObjectId } from "../mod.ts";
import { macrotasks, suite, until } from "./_harness.ts";
import { catalogue, observer } from "./_misuse.ts";

/** Records handler firings by label, in order. */
function recorder() {
  const fired: string[] = [];
  return { fired, on: (label: string) => () => void fired.push(label) };
}

suite("Ray reference counting semantics", async (t) => {
  await t.test("TestBasic: local and submitted references each keep an object in scope", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const a = counter.create({ sizeBytes: 100 });
    const b = counter.create();
    a.onOutOfScope(on("a"));
    b.onOutOfScope(on("b"));
    const a2 = a.retain();
    const task = counter.addSubmittedRefs([a, b]);
    a.release();
    a2.release();
    b.release();
    await macrotasks(5);
    t.eq(fired, [], "the submitted task still holds both");
    t.eq(counter.info(a)?.submittedRefs, 1, "a is held by the task only");
    task.release();
    await until(() => fired.length === 2, "both handlers");
    t.eq(fired, ["a", "b"], "both out of scope when the task finishes, in argument order");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestUnreconstructableObjectOutOfScope: lineage keeps an object that cannot be rebuilt in scope", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const ref = counter.create();
    ref.onOutOfScope(on("out of scope"));
    ref.onDeleted(on("deleted"));
    const lineage = counter.addLineageRefs([ref]);
    ref.release();
    await macrotasks(5);
    t.eq(fired, [], "still in scope: not reconstructable, and lineage pins it");
    t.eq(counter.info(ref.id)?.outOfScope, false, "in scope");
    lineage.release();
    await until(() => fired.length === 2, "both handlers");
    t.eq(fired, ["out of scope", "deleted"], "out of scope, then deleted, once the lineage goes");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestUnreconstructableObjectOutOfScope (lineage-pinned variant): out of scope but kept", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const ref = counter.create({ reconstructable: true });
    ref.onOutOfScope(on("out of scope"));
    ref.onDeleted(on("deleted"));
    const lineage = counter.addLineageRefs([ref]);
    ref.release();
    await until(() => fired.length === 1, "the out-of-scope handler");
    t.eq(fired, ["out of scope"], "out of scope with its last reference");
    const info = counter.info(ref.id);
    t.ok(info?.outOfScope && info.lineageRefs === 1, "kept by its lineage reference");
    t.eq(counter.onOutOfScope(ref.id, () => {}), false, "registration in that window is refused, as in Ray");
    lineage.release();
    await until(() => fired.length === 2, "the deleted handler");
    t.eq(fired, ["out of scope", "deleted"], "releasing the lineage deletes it");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestPinLineageRecursive: deleting the last object releases the lineage chain", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    // Each object was made by a task that took the previous one as its argument.
    const first = counter.create({ reconstructable: true });
    const second = counter.create({ reconstructable: true, lineage: [first] });
    const third = counter.create({ reconstructable: true, lineage: [second] });
    for (const [index, ref] of [first, second, third].entries()) ref.onDeleted(on(`deleted ${index}`));
    first.release();
    second.release();
    await macrotasks(5);
    t.ok(counter.info(first.id)?.outOfScope && counter.info(second.id)?.outOfScope, "both out of scope, kept");
    t.eq(counter.liveObjects, 3, "nothing deleted yet");
    third.release();
    await until(() => fired.length === 3, "three deletions");
    t.eq(fired, ["deleted 0", "deleted 1", "deleted 2"], "all three, dependencies first");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestFree: before registration, after registration, and the freed flag gone with the entry", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const early = counter.create();
    early.free();
    t.eq(early.onOutOfScope(on("early")), false, "freed before registration: refused");
    const late = counter.create();
    late.onOutOfScope(on("late"));
    late.onDeleted(on("late deleted"));
    late.free();
    await until(() => fired.length === 1, "the freed object's handler");
    t.eq(fired, ["late"], "freed after registration: fires now");
    t.ok(counter.info(late)?.freed, "the entry stays, marked freed");
    early.release();
    late.release();
    await until(() => fired.length === 2, "the deletion");
    t.eq(fired, ["late", "late deleted"], "deleted once its references drop, no second out-of-scope call");
    const next = counter.create();
    t.eq(counter.info(next)?.freed, false, "a new object in the reused slot is not freed");
    next.release();
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestNestedObjectNoBorrow: contained objects go out of scope before their containers", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const inner = counter.create();
    const mid = counter.create({ contains: [inner] });
    const outer = counter.create({ contains: [mid] });
    inner.onOutOfScope(on("inner"));
    mid.onOutOfScope(on("mid"));
    outer.onOutOfScope(on("outer"));
    inner.release();
    mid.release();
    await macrotasks(5);
    t.eq(fired, [], "the containers keep what they contain");
    t.eq(counter.info(inner.id)?.containedIn, 1, "inner is contained once");
    outer.release();
    await until(() => fired.length === 3, "three handlers");
    t.eq(fired, ["inner", "mid", "outer"], "inner first, outer last");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("free on a container: its handlers run at once, the objects it contains go only when its references drop", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const inner = counter.create();
    const container = counter.create({ contains: [inner] });
    inner.onOutOfScope(on("inner"));
    container.onOutOfScope(on("container"));
    inner.release();
    container.free();
    await until(() => fired.length === 1, "the freed container's handler");
    await macrotasks(5);
    t.eq(fired, ["container"], "the container's handler ran at the free; inner's did not");
    t.eq(counter.info(inner.id)?.containedIn, 1, "the freed container still contains inner");
    container.release();
    await until(() => fired.length === 2, "inner's handler");
    t.eq(fired, ["container", "inner"], "inner goes when the container's references drop, after it");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestNestedObject: a borrower keeps an inner object after its containers go", async (t) => {
    await using counter = new Counter();
    await using borrower = Counter.attach(counter.key);
    const { fired, on } = recorder();
    const inner = counter.create();
    const mid = counter.create({ contains: [inner] });
    const outer = counter.create({ contains: [mid] });
    inner.onOutOfScope(on("inner"));
    mid.onOutOfScope(on("mid"));
    outer.onOutOfScope(on("outer"));
    const borrowed = borrower.borrow(inner.lend());
    mid.release();
    outer.release();
    await until(() => fired.length === 2, "the containers' handlers");
    t.eq(fired, ["mid", "outer"], "the containers go");
    t.eq(counter.info(inner.id)?.borrowers, 1, "inner stays for its borrower");
    borrowed.release();
    await until(() => fired.length === 3, "inner's handler");
    t.eq(fired, ["mid", "outer", "inner"], "inner goes when the borrower lets go");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestDuplicateNestedObject: a repeated id counts once in a container, twice for a borrower", async (t) => {
    await using counter = new Counter();
    await using borrower = Counter.attach(counter.key);
    const { fired, on } = recorder();
    const inner = counter.create();
    const outer = counter.create({ contains: [inner, inner.id] });
    t.eq(counter.info(inner)?.containedIn, 1, "contained once");
    inner.onOutOfScope(on("inner"));
    const first = borrower.borrow(inner.retain().lend());
    const second = borrower.borrow(inner.lend());
    outer.release();
    first.release();
    await macrotasks(5);
    t.eq(fired, [], "the borrower still holds one of its two references");
    t.eq(counter.info(inner.id)?.borrowedRefs, 1, "one borrowed reference left");
    second.release();
    await until(() => fired.length === 1, "inner's handler");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestSimpleBorrowerFailure: a participant that leaves has its references released", async (t) => {
    await using counter = new Counter();
    const borrower = Counter.attach(counter.key);
    const { fired, on } = recorder();
    const ref = counter.create();
    ref.onOutOfScope(on("owner's handler"));
    const borrowed = borrower.borrow(ref.lend());
    borrowed.retain(); // Two references, never released by the borrower itself.
    borrower.addSubmittedRefs([borrowed]);
    await macrotasks(5);
    t.eq(fired, [], "the borrower keeps it in scope");
    await borrower.close(); // What a Worker's end does for it (workers.test.ts terminates one).
    await until(() => fired.length === 1, "the owner's handler");
    t.eq(counter.stats().openSinks, 1, "the borrower has gone");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("only the owner registers and frees: NOT_OWNED for a borrower", async (t) => {
    await using counter = new Counter();
    await using borrower = Counter.attach(counter.key);
    const ref = counter.create();
    const borrowed = borrower.borrow(ref.retain().lend());
    await catalogue(t, [
      {
        what: "onOutOfScope by a borrower",
        call: () => borrower.onOutOfScope(borrowed, () => {}),
        code: "NOT_OWNED",
        message: `handler on object ${ref.id}`,
      },
      {
        what: "onDeleted by a borrower",
        call: () => borrower.onDeleted(borrowed, () => {}),
        code: "NOT_OWNED",
        message: `handler on object ${ref.id}`,
      },
      {
        what: "free by a borrower",
        call: () => borrower.free(borrowed),
        code: "NOT_OWNED",
        message: `free object ${ref.id}`,
      },
    ], observer([counter, borrower], [ref, borrowed]));
    t.eq(borrower.info(borrowed)?.owned, false, "info tells the borrower it does not own the object");
    borrowed.release();
    ref.release();
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("a handler removed before it fires never fires", async (t) => {
    await using counter = new Counter();
    const { fired, on } = recorder();
    const ref = counter.create();
    const removed = on("removed");
    const kept = on("kept");
    const deleted = on("deleted");
    ref.onOutOfScope(removed);
    ref.onOutOfScope(kept);
    ref.onDeleted(deleted);
    t.eq(counter.offOutOfScope(ref, removed), true, "removed before it fired");
    t.eq(counter.offOutOfScope(ref, removed), false, "not registered any more");
    t.eq(counter.offDeleted(ref, deleted), true, "a deleted handler is removed too");
    t.eq(counter.info(ref)?.pendingCallbacks, 1, "one out-of-scope handler left");
    ref.release();
    await until(() => fired.length === 1, "the kept handler");
    await macrotasks(5);
    t.eq(fired, ["kept"], "only the kept handler ran");
    t.eq(counter.offOutOfScope(ref.id, kept), false, "removing after it fired: false");
    t.eq(counter.stats().pendingHandlers, 0, "no handler left registered");
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("TestReferenceStats: a snapshot shows counts by kind, owner, borrowers and pending handlers", async (t) => {
    await using counter = new Counter();
    await using borrower = Counter.attach(counter.key);
    const inner = counter.create({ sizeBytes: 200 });
    const outer = counter.create({ sizeBytes: 100, contains: [inner], reconstructable: true });
    inner.onOutOfScope(() => {});
    inner.onDeleted(() => {});
    const task = counter.addSubmittedRefs([inner]);
    const borrowed = borrower.borrow(inner.retain().lend());
    const snapshot = counter.snapshot();
    const record = snapshot.objects.find((object) => object.id === inner.id)!;
    t.eq(snapshot.objects.length, 2, "two objects");
    t.eq(
      [record.localRefs, record.submittedRefs, record.borrowedRefs, record.containedIn, record.borrowers],
      [1, 1, 1, 1, 1],
      "inner: one of each kind",
    );
    t.eq([record.pendingCallbacks, record.pendingDeletedCallbacks], [1, 1], "one handler of each kind pending");
    t.eq(record.owner, counter.sink, "owned by this thread");
    t.eq(record.holdings.map((holding) => holding.sink), [borrower.sink], "borrowed by the other");
    t.ok(snapshot.objects.find((object) => object.id === outer.id)?.reconstructable, "outer is reconstructable");
    t.eq(snapshot.summary.liveBytes, 300, "300 bytes live");
    t.eq(snapshot.summary.openSinks, 2, "two participants");
    const printed = formatSnapshot(snapshot);
    t.ok(printed.includes(String(inner.id)) && printed.includes("200 B"), "the printed table lists the object");
    t.ok(printed.includes("2 live objects"), "and the summary");
    borrowed.release();
    task.release();
    inner.release();
    outer.release();
    t.eq(counter.liveObjects, 0, "nothing is left live");
  });

  await t.test("bad Ray-semantics input is a typed error, and changes nothing", async (t) => {
    const counter = new Counter();
    const inner = counter.create();
    const gone = counter.create();
    const goneId: ObjectId = gone.id;
    gone.release();
    await catalogue(t, [
      {
        what: "contains a deleted object",
        call: () => counter.create({ contains: [goneId] }),
        code: "STALE_ID",
        message: "create (sizeBytes 0)",
      },
      {
        what: "contains a forged id",
        call: () => counter.create({ contains: [inner, 42] }),
        code: "INVALID_ID",
        message: "create (sizeBytes 0)",
      },
      {
        what: "contains a non-iterable",
        call: () => counter.create({ contains: 5 as unknown as [] }),
        code: "INVALID_ARGUMENT",
        message: "create (contains): expected an iterable of Refs or ids",
      },
      {
        what: "lineage on a string",
        call: () => counter.create({ lineage: ["x" as unknown as number] }),
        code: "INVALID_ARGUMENT",
        message: "create (lineage): expected a Ref or an object id",
      },
      {
        what: "borrow something not lent",
        call: () => counter.borrow({ key: counter.key, id: inner.id, lender: 0, generation: 0 }),
        code: "NO_REFERENCE",
        message: `borrow object ${inner.id} from sink 0`,
      },
      {
        what: "borrow from another counter",
        call: () => counter.borrow({ key: counter.key + 1, id: inner.id, lender: 0, generation: 0 }),
        code: "INVALID_ARGUMENT",
        message: `lent by another counter (key ${counter.key + 1})`,
      },
      {
        what: "borrow a non-LentRef",
        call: () => counter.borrow("x" as unknown as never),
        code: "INVALID_ARGUMENT",
        message: "borrow: expected a LentRef",
      },
      {
        what: "attach with a forged key",
        call: () => Counter.attach(counter.key + 1),
        code: "CLOSED",
        message: `attaching to counter ${counter.key + 1}`,
      },
      {
        what: "attach with a string key",
        call: () => Counter.attach("1" as unknown as number),
        code: "INVALID_ARGUMENT",
        message: "attach: the key must be a number",
      },
    ], () => JSON.stringify([counter.stats(), counter.info(inner)]));
    inner.release();
    t.eq(counter.liveObjects, 0, "nothing is left live");
    await counter.close();
  });
});
