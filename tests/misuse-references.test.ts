// No release goes below zero, no new reference reaches a lineage-only object, no bad LentRef claims.
// Releases of every kind (local, borrowed, submitted, lineage, batched, lent) past their last
// reference are NO_REFERENCE; new references to an object kept only by lineage are refused;
// malformed, forged and foreign LentRefs are INVALID_ARGUMENT or NO_REFERENCE. Each case goes
// through tests/_misuse.ts, which checks its code, status, message and an unchanged table.
import { suite } from "./_harness.ts";
import { catalogue, checkWorld, closeWorld, each, type Loose, noop, openWorld, refusals } from "./_misuse.ts";

suite("the misuse catalogue: references", async (t) => {
  const world = await openWorld();
  const {
    counter,
    other,
    peer,
    live,
    spare,
    spare2,
    pinned,
    twice,
    submittedDone,
    lineageDone,
    shared,
    borrowed,
    borrowedDone,
    unclaimed,
    handed,
    claimedLent,
    observe,
    lent,
  } = world;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => checkWorld(t, world));

  await t.test("releases below zero, of every kind: NO_REFERENCE", async (t) => {
    await catalogue(t, [
      {
        what: "a local Ref released twice",
        call: () => twice.release(),
        code: "NO_REFERENCE",
        message: `release: this Ref to object ${live.id} was already released`,
      },
      {
        what: "a borrowed Ref released twice",
        call: () => borrowedDone.release(),
        code: "NO_REFERENCE",
        message: `release: this Ref to object ${shared.id}`,
      },
      {
        what: "submitted refs released twice",
        call: () => submittedDone.release(),
        code: "NO_REFERENCE",
        message: "these submitted refs were already released",
      },
      {
        what: "lineage refs released twice",
        call: () => lineageDone.release(),
        code: "NO_REFERENCE",
        message: "these lineage refs were already released",
      },
      {
        what: "releaseAll of a released Ref",
        call: () => counter.releaseAll([twice]),
        code: "NO_REFERENCE",
        message: "at index 0 is already released",
      },
      {
        what: "releaseAll of one Ref twice",
        call: () => counter.releaseAll([spare, spare]),
        code: "NO_REFERENCE",
        message: "at index 1 is already released or repeated",
      },
      {
        what: "releaseAll of a held Ref and a released one (all or nothing)",
        call: () => counter.releaseAll([spare, spare2, twice]),
        code: "NO_REFERENCE",
        message: "at index 2",
      },
      {
        what: "releaseAll of a Set with a released Ref",
        call: () => counter.releaseAll(new Set([spare, twice])),
        code: "NO_REFERENCE",
        message: "at index 1",
      },
      {
        what: "the peer's releaseAll of its released borrowed Ref",
        call: () => peer.releaseAll([borrowed, borrowedDone]),
        code: "NO_REFERENCE",
        message: "at index 1",
      },
      {
        what: "a lent reference claimed twice",
        call: () => counter.borrow(claimedLent),
        code: "NO_REFERENCE",
        message: `borrow object ${handed.id} from sink 0`,
      },
      {
        what: "a LentRef that was never lent",
        call: () => counter.borrow(lent(live.id, peer.sink)),
        code: "NO_REFERENCE",
        message: `borrow object ${live.id} from sink ${peer.sink}`,
      },
      {
        what: "a LentRef from a participant number not attached",
        call: () => counter.borrow(lent(shared.id, 63)),
        code: "NO_REFERENCE",
        message: "from sink 63",
      },
      { what: "lend of a released Ref", call: () => twice.lend(), code: "NO_REFERENCE", message: "lend: this Ref" },
      {
        what: "retain through a released Ref",
        call: () => twice.retain(),
        code: "NO_REFERENCE",
        message: "retain: this Ref",
      },
    ], observe);
  });

  await t.test("retain after out of scope: no new references to an object kept only by lineage", async (t) => {
    await catalogue(t, [
      {
        what: "retain through its released Ref",
        call: () => pinned.retain(),
        code: "NO_REFERENCE",
        message: `retain: this Ref to object ${pinned.id}`,
      },
      {
        what: "submitted refs",
        call: () => counter.addSubmittedRefs([live, pinned]),
        code: "STALE_ID",
        message: "kept only by lineage",
      },
      {
        what: "lineage refs",
        call: () => counter.addLineageRefs([pinned]),
        code: "STALE_ID",
        message: "add lineage refs to 1 objects",
      },
      { what: "runTask", call: () => counter.runTask([pinned], noop), code: "STALE_ID", message: "add submitted refs" },
      {
        what: "create containing it",
        call: () => counter.create({ contains: [pinned] }),
        code: "STALE_ID",
        message: "create",
      },
      {
        what: "create with it in its lineage",
        call: () => counter.create({ lineage: [pinned] }),
        code: "STALE_ID",
        message: "create",
      },
      {
        what: "borrow of it",
        call: () => counter.borrow(lent(pinned.id)),
        code: "STALE_ID",
        message: `borrow object ${pinned.id}`,
      },
    ], observe);
    await refusals(t, [
      { what: "onOutOfScope on it", call: () => counter.onOutOfScope(pinned, noop), result: false },
      { what: "free of it (already out of scope)", call: () => counter.free(pinned), result: undefined },
    ], observe);
  });

  await t.test("LentRefs that are malformed, forged or of another counter", async (t) => {
    const counterKey = counter.key;
    await catalogue(t, [
      ...each(
        [null, undefined, 42, "lent", {}, [unclaimed]],
        (value) => `borrow of ${JSON.stringify(value) ?? "undefined"}`,
        (value) => counter.borrow(value as Loose),
        "INVALID_ARGUMENT",
        "borrow: expected a LentRef from Ref.lend()",
      ),
      {
        what: "borrow with a string id",
        call: () => counter.borrow({ ...unclaimed, id: String(shared.id) } as Loose),
        code: "INVALID_ARGUMENT",
        message: "expected a LentRef",
      },
      {
        what: "borrow with a string lender",
        call: () => counter.borrow({ ...unclaimed, lender: "0" } as Loose),
        code: "INVALID_ARGUMENT",
        message: "expected a LentRef",
      },
      {
        what: "borrow with a missing key",
        call: () => counter.borrow({ id: shared.id, lender: 0 } as Loose),
        code: "INVALID_ARGUMENT",
        message: "expected a LentRef",
      },
      {
        what: "borrow of another counter's LentRef",
        call: () => counter.borrow({ ...unclaimed, key: other.key }),
        code: "INVALID_ARGUMENT",
        message: `lent by another counter (key ${other.key})`,
      },
      {
        what: "borrow with a NaN key",
        call: () => counter.borrow({ ...unclaimed, key: NaN }),
        code: "INVALID_ARGUMENT",
        message: "lent by another counter",
      },
      ...each(
        [-1, -2, NaN, 0.5, 1.5, 2 ** 32, 2 ** 32 + counter.sink, Infinity, -Infinity, 2 ** 32 - 1, 1e20],
        (lender) => `borrow from lender ${lender}`,
        (lender) => counter.borrow({ key: counterKey, id: shared.id, lender, generation: unclaimed.generation }),
        "INVALID_ARGUMENT",
        (lender) => `borrow: the lender ${lender} is not a sink number`,
      ),
      ...each(
        [64, 1000, 2 ** 32 - 2],
        (lender) => `borrow from sink ${lender}, beyond the last`,
        (lender) => counter.borrow({ key: counterKey, id: shared.id, lender, generation: unclaimed.generation }),
        "INVALID_ARGUMENT",
        (lender) => `borrow object ${shared.id} from sink ${lender}: an argument is NULL or outside its domain`,
      ),
    ], observe);
    const mine = counter.borrow(unclaimed);
    t.eq(mine.id, shared.id, "the genuine LentRef is still claimable, once");
    mine.release();
  });

  await closeWorld(t, world);
});
