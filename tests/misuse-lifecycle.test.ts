// After a close or a Worker's end, every call with the old handles is refused and changes nothing.
// A closed participant's and a closed counter's calls are CLOSED (the rest of the counter stays
// open); a terminated Worker's ids, LentRefs, participant number and key reach nothing. Each
// case goes through tests/_misuse.ts, which checks its code, status, message and an unchanged
// table.
import { Counter, type LentRef, type ObjectId, RefscopeError } from "../mod.ts";
import { suite, until } from "./_harness.ts";
import { catalogue, checkWorld, closeWorld, noop, observer, openWorld, quietReleases, refusals } from "./_misuse.ts";
import { Peer } from "./_workers.ts";

suite("the misuse catalogue: closed participants, closed counters, ended Workers", async (t) => {
  const world = await openWorld();
  const { counter, live, unclaimed, observe } = world;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => checkWorld(t, world));

  await t.test("a participant that closed: every call but a release is CLOSED, and the counter stays open", async (t) => {
    const leaving = Counter.attach(counter.key);
    const ref = leaving.create();
    const borrowedThere = leaving.borrow(live.retain().lend());
    await leaving.close();
    t.eq(counter.info(live)?.borrowers, 0, "its borrow was released");
    await catalogue(t, [
      { what: "create", call: () => leaving.create(), code: "CLOSED", message: "create: the counter is closed" },
      { what: "retain of its Ref", call: () => ref.retain(), code: "CLOSED", message: "retain: the counter is closed" },
      { what: "info", call: () => leaving.info(live.id), code: "CLOSED", message: "info: the counter is closed" },
      {
        what: "borrow",
        call: () => leaving.borrow(unclaimed),
        code: "CLOSED",
        message: "borrow: the counter is closed",
      },
    ], observe);
    await quietReleases(t, [{ what: "release of its Ref", handle: borrowedThere }], observe);
    t.eq(counter.closed, false, "the counter is still open");
  });

  await t.test("every public call after close: CLOSED, but releases, which are quiet", async (t) => {
    const closing = new Counter();
    const attached = Counter.attach(closing.key);
    const ref = closing.create();
    ref.onOutOfScope(noop);
    const lease = closing.addSubmittedRefs([ref]);
    const lineage = closing.addLineageRefs([ref]);
    const lentRef = ref.retain().lend();
    const attachedRef = attached.borrow(ref.retain().lend());
    const attachedOwn = attached.create();
    // Released after close, one case each, apart from the handles the cases above use.
    const [spareRef, spareLease, spareAttached] = [ref.retain(), closing.addSubmittedRefs([ref]), attachedRef.retain()];
    const closed = closing.close();
    t.eq(closing.close(), closed, "close() again returns the same promise");
    await closed;
    const statsAtClose = closing.stats();
    const all = [ref, lease, lineage, attachedRef, attachedOwn];
    const observeClosed = () =>
      JSON.stringify({ opener: closing.stats(), attached: attached.stats(), released: all.map((h) => h.released) });
    const observeQuiet = () => JSON.stringify({ opener: closing.stats(), attached: attached.stats() });
    const handler = () => {};
    await catalogue(t, [
      { what: "create", call: () => closing.create(), code: "CLOSED", message: "create: the counter is closed" },
      { what: "borrow", call: () => closing.borrow(lentRef), code: "CLOSED", message: "borrow: the counter is closed" },
      {
        what: "onOutOfScope",
        call: () => closing.onOutOfScope(ref, handler),
        code: "CLOSED",
        message: "onOutOfScope: the counter is closed",
      },
      {
        what: "offOutOfScope",
        call: () => closing.offOutOfScope(ref, handler),
        code: "CLOSED",
        message: "offOutOfScope: the counter is closed",
      },
      {
        what: "onDeleted",
        call: () => closing.onDeleted(ref, handler),
        code: "CLOSED",
        message: "onDeleted: the counter is closed",
      },
      {
        what: "offDeleted",
        call: () => closing.offDeleted(ref, handler),
        code: "CLOSED",
        message: "offDeleted: the counter is closed",
      },
      { what: "free", call: () => closing.free(ref), code: "CLOSED", message: "free: the counter is closed" },
      { what: "info", call: () => closing.info(ref), code: "CLOSED", message: "info: the counter is closed" },
      {
        what: "holdings",
        call: () => closing.holdings(ref),
        code: "CLOSED",
        message: "holdings: the counter is closed",
      },
      { what: "snapshot", call: () => closing.snapshot(), code: "CLOSED", message: "snapshot: the counter is closed" },
      {
        what: "addSubmittedRefs",
        call: () => closing.addSubmittedRefs([ref]),
        code: "CLOSED",
        message: "add submitted refs to 1 objects: the counter is closed",
      },
      {
        what: "addLineageRefs",
        call: () => closing.addLineageRefs([ref]),
        code: "CLOSED",
        message: "add lineage refs to 1 objects: the counter is closed",
      },
      { what: "runTask", call: () => closing.runTask([ref], noop), code: "CLOSED", message: "the counter is closed" },
      { what: "Ref.retain", call: () => ref.retain(), code: "CLOSED", message: "retain: the counter is closed" },
      { what: "Ref.lend", call: () => ref.lend(), code: "CLOSED", message: "lend: the counter is closed" },
      {
        what: "Ref.onOutOfScope",
        call: () => ref.onOutOfScope(handler),
        code: "CLOSED",
        message: "onOutOfScope: the counter is closed",
      },
      {
        what: "Ref.onDeleted",
        call: () => ref.onDeleted(handler),
        code: "CLOSED",
        message: "onDeleted: the counter is closed",
      },
      { what: "Ref.free", call: () => ref.free(), code: "CLOSED", message: "free: the counter is closed" },
      { what: "Ref.info", call: () => ref.info(), code: "CLOSED", message: "info: the counter is closed" },
      {
        what: "attach with the closed counter's key",
        call: () => Counter.attach(closing.key),
        code: "CLOSED",
        message: `attaching to counter ${closing.key}: the counter is closed`,
      },
      // The attached participant is still open itself: its calls reach the closed native counter.
      {
        what: "the attached participant's create",
        call: () => attached.create(),
        code: "CLOSED",
        message: "create (sizeBytes 0): the counter is closed",
      },
      {
        what: "the attached participant's onOutOfScope",
        call: () => attachedOwn.onOutOfScope(handler),
        code: "CLOSED",
        message: "the counter is closed",
      },
      {
        what: "the attached participant's info",
        call: () => attached.info(attachedOwn),
        code: "CLOSED",
        message: `info of object ${attachedOwn.id}: the counter is closed`,
      },
      {
        what: "the attached participant's snapshot",
        call: () => attached.snapshot(),
        code: "CLOSED",
        message: "snapshot: the counter is closed",
      },
      {
        what: "the attached participant's addSubmittedRefs",
        call: () => attached.addSubmittedRefs([attachedOwn]),
        code: "CLOSED",
        message: "the counter is closed",
      },
    ], observeClosed);
    await refusals(t, [
      { what: "stats() after close: the figures at close", call: () => closing.stats(), result: statsAtClose },
    ], observeClosed);
    // Last, as each marks its handle released: a release after close is as quiet as disposal.
    await quietReleases(t, [
      { what: "disposing a Ref after close", handle: ref, release: () => ref[Symbol.dispose]() },
      { what: "disposing a lease after close", handle: lease, release: () => lease[Symbol.dispose]() },
      {
        what: "disposing the attached participant's Ref",
        handle: attachedRef,
        release: () => attachedRef[Symbol.dispose](),
      },
      { what: "Ref.release", handle: spareRef },
      { what: "SubmittedRefs.release", handle: spareLease },
      { what: "LineageRefs.release", handle: lineage },
      { what: "the attached participant's release (its opener closed the counter)", handle: spareAttached },
      { what: "releaseAll", handle: attachedOwn, release: () => attached.releaseAll([attachedOwn]) },
    ], observeQuiet);
    t.eq(closing.closed, true, "closed");
    await attached.close();
    t.eq(attached.closed, true, "the attached participant closes after the opener");
  });

  await t.test("handles from a terminated Worker: its ids, its LentRefs, its participant number, its counter's key", async (t) => {
    const main = new Counter();
    const worker = new Peer();
    const participant = await worker.call<number>("attach", main.key);
    // Owned by the Worker, borrowed here: it outlives the Worker, with its owner gone.
    const keptId = await worker.call<ObjectId>("create", 8);
    const kept = main.borrow(await worker.call<LentRef>("lend", keptId));
    // Owned by the Worker and lent, never claimed: deleted when the Worker ends.
    const lentFromDead = await worker.call<LentRef>("lend", await worker.call<ObjectId>("create", 8));
    // Held by the Worker only: deleted when it ends.
    const goneId = await worker.call<ObjectId>("create", 8);
    // This thread's object, borrowed by the Worker and lent back, never claimed.
    const mine = main.create();
    await worker.call("borrow", mine.retain().lend());
    const backFromDead = await worker.call<LentRef>("lend", mine.id);
    worker.terminate();
    await until(() => main.stats().openSinks === 1, "the terminated Worker's participation to end", 15_000);
    t.eq(main.info(keptId)?.owner, "gone", "the Worker's borrowed object lost its owner");
    t.eq(main.info(mine)?.borrowers, 0, "the Worker's borrow of this thread's object was released");

    const observeMain = observer([main], [kept, mine]);
    await catalogue(t, [
      {
        what: "borrow of a LentRef from the dead Worker, object deleted",
        call: () => main.borrow(lentFromDead),
        code: "STALE_ID",
        message: `borrow object ${lentFromDead.id} from sink ${participant}`,
      },
      {
        what: "borrow of a LentRef from the dead Worker, object live",
        call: () => main.borrow(backFromDead),
        code: "NO_REFERENCE",
        message: `borrow object ${mine.id} from sink ${participant}`,
      },
      {
        what: "borrow naming the dead Worker as lender",
        call: () =>
          main.borrow({ key: main.key, id: keptId, lender: participant, generation: backFromDead.generation }),
        code: "NO_REFERENCE",
        message: `from sink ${participant}`,
      },
      {
        what: "free of the dead Worker's live object",
        call: () => main.free(keptId),
        code: "NOT_OWNED",
        message: `free object ${keptId}`,
      },
      {
        what: "onOutOfScope on the dead Worker's live object",
        call: () => main.onOutOfScope(keptId, noop),
        code: "NOT_OWNED",
        message: `handler on object ${keptId}`,
      },
      {
        what: "onDeleted on the dead Worker's live object",
        call: () => kept.onDeleted(noop),
        code: "NOT_OWNED",
        message: `handler on object ${keptId}`,
      },
      {
        what: "free of the dead Worker's deleted object",
        call: () => main.free(goneId),
        code: "STALE_ID",
        message: `free object ${goneId}`,
      },
      {
        what: "submitted refs on the dead Worker's deleted object",
        call: () => main.addSubmittedRefs([mine, goneId]),
        code: "STALE_ID",
        message: "add submitted refs",
      },
      {
        what: "create containing the dead Worker's deleted object",
        call: () => main.create({ contains: [goneId] }),
        code: "STALE_ID",
        message: "create",
      },
    ], observeMain);
    await refusals(t, [
      { what: "info of the dead Worker's deleted object", call: () => main.info(goneId), result: undefined },
      {
        what: "onOutOfScope on the dead Worker's deleted object",
        call: () => main.onOutOfScope(goneId, noop),
        result: false,
      },
      {
        what: "holdings of the dead Worker's deleted lent object",
        call: () => main.holdings(lentFromDead.id),
        result: [],
      },
    ], observeMain);
    kept.release();
    mine.release();
    t.eq(main.liveObjects, 0, "nothing is left live");
    await main.close();

    // A counter the Worker opened ends with it: its key then names nothing.
    const opener = new Peer();
    const ownKey = await opener.call<number>("openOwn");
    opener.terminate();
    let attachError: unknown;
    await until(
      () => {
        try {
          const late = Counter.attach(ownKey); // Won the race with the Worker's exit: leave again.
          void late.close();
          return false;
        } catch (error) {
          attachError = error;
          return true;
        }
      },
      "the terminated Worker's counter to close",
      15_000,
    );
    t.ok(attachError instanceof RefscopeError && attachError.code === "CLOSED", "attach with its key: CLOSED");
    t.ok((attachError as Error).message.includes(`attaching to counter ${ownKey}`), "the message names the key");
  });

  await closeWorld(t, world);
});
