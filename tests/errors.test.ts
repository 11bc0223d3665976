// Bad input: every mistake is a RefscopeError with a code, the native status and a message
// naming the call, never a crash, and leaves the table exactly as it was.
import { Counter, type Ref } from "../mod.ts";
import { suite } from "./_harness.ts";
import { catalogue, type Loose, type Misuse } from "./_misuse.ts";

suite("misuse", async (t) => {
  await using counter = new Counter();
  await using other = new Counter();
  const live = counter.create({ sizeBytes: 7 });
  live.onOutOfScope(() => {});
  const stale = counter.create();
  const staleId = stale.id;
  stale.release();
  const foreign = other.create();
  const released = counter.create();
  const keeper = released.retain();
  released.release();
  const lease = counter.addSubmittedRefs([live]);
  const leaseReleased = counter.addSubmittedRefs([live]);
  leaseReleased.release();

  const snapshot = () => JSON.stringify([counter.stats(), counter.info(live), counter.info(keeper)]);

  const cases: Misuse[] = [
    {
      what: "create with a negative size",
      call: () => counter.create({ sizeBytes: -1 }),
      code: "INVALID_ARGUMENT",
      message: "create (sizeBytes -1)",
    },
    {
      what: "create with a fractional size",
      call: () => counter.create({ sizeBytes: 1.5 }),
      code: "INVALID_ARGUMENT",
      message: "create (sizeBytes 1.5)",
    },
    {
      what: "create with a NaN size",
      call: () => counter.create({ sizeBytes: NaN }),
      code: "INVALID_ARGUMENT",
      message: "create (sizeBytes NaN)",
    },
    {
      what: "create with a size of 2^53 (overflow)",
      call: () => counter.create({ sizeBytes: 2 ** 53 }),
      code: "INVALID_ARGUMENT",
      message: `create (sizeBytes ${2 ** 53})`,
    },
    {
      what: "create with a string size",
      call: () => counter.create({ sizeBytes: "12" as Loose }),
      code: "INVALID_ARGUMENT",
      message: "create: sizeBytes must be a number",
    },
    {
      what: "double release of a Ref",
      call: () => released.release(),
      code: "NO_REFERENCE",
      message: `release: this Ref to object ${released.id} was already released`,
    },
    {
      what: "retain through a released Ref",
      call: () => released.retain(),
      code: "NO_REFERENCE",
      message: `retain: this Ref to object ${released.id} was already released`,
    },
    {
      what: "double release of submitted refs",
      call: () => leaseReleased.release(),
      code: "NO_REFERENCE",
      message: "release: these submitted refs were already released",
    },
    {
      what: "free of a deleted object",
      call: () => counter.free(staleId),
      code: "STALE_ID",
      message: `free object ${staleId}`,
    },
    {
      what: "submitted refs on a deleted object",
      call: () => counter.addSubmittedRefs([live, staleId]),
      code: "STALE_ID",
      message: "add submitted refs to 2 objects",
    },
    {
      what: "info of a forged id",
      call: () => counter.info(12345),
      code: "INVALID_ID",
      message: "info of object 12345",
    },
    {
      what: "free of an id from a future generation",
      call: () => counter.free(live.id + 1000 * 2 ** 24),
      code: "INVALID_ID",
      message: `free object ${live.id + 1000 * 2 ** 24}`,
    },
    {
      what: "onOutOfScope on id 0",
      call: () => counter.onOutOfScope(0, () => {}),
      code: "INVALID_ID",
      message: "handler on object 0",
    },
    {
      what: "onOutOfScope on a fractional id",
      call: () => counter.onOutOfScope(live.id + 0.5, () => {}),
      code: "INVALID_ID",
      message: `handler on object ${live.id + 0.5}`,
    },
    {
      what: "onOutOfScope on NaN",
      call: () => counter.onOutOfScope(NaN, () => {}),
      code: "INVALID_ID",
      message: "handler on object NaN",
    },
    {
      what: "onOutOfScope on -1",
      call: () => counter.onOutOfScope(-1, () => {}),
      code: "INVALID_ID",
      message: "handler on object -1",
    },
    {
      what: "onOutOfScope on 2^53",
      call: () => counter.onOutOfScope(2 ** 53, () => {}),
      code: "INVALID_ID",
      message: `handler on object ${2 ** 53}`,
    },
    {
      what: "onOutOfScope with a null handler",
      call: () => counter.onOutOfScope(live, null as Loose),
      code: "INVALID_ARGUMENT",
      message: "onOutOfScope: the handler must be a function",
    },
    {
      what: "onOutOfScope with a string handler",
      call: () => live.onOutOfScope("() => {}" as Loose),
      code: "INVALID_ARGUMENT",
      message: "onOutOfScope: the handler must be a function",
    },
    {
      what: "onOutOfScope with an object handler",
      call: () => live.onOutOfScope({} as Loose),
      code: "INVALID_ARGUMENT",
      message: "onOutOfScope: the handler must be a function",
    },
    {
      what: "onOutOfScope on a string target",
      call: () => counter.onOutOfScope("1" as Loose, () => {}),
      code: "INVALID_ARGUMENT",
      message: "onOutOfScope: expected a Ref or an object id, got string",
    },
    {
      what: "onOutOfScope on another counter's Ref",
      call: () => counter.onOutOfScope(foreign, () => {}),
      code: "INVALID_ID",
      message: `onOutOfScope: the Ref to object ${foreign.id} belongs to another counter`,
    },
    {
      what: "releaseAll with a number",
      call: () => counter.releaseAll([keeper, 42 as Loose]),
      code: "INVALID_ARGUMENT",
      message: "releaseAll: expected a Ref at index 1, got number",
    },
    {
      what: "releaseAll with another counter's Ref",
      call: () => counter.releaseAll([keeper, foreign]),
      code: "INVALID_ID",
      message: `releaseAll: the Ref to object ${foreign.id} belongs to another counter`,
    },
    {
      what: "releaseAll with a released Ref",
      call: () => counter.releaseAll([keeper, released]),
      code: "NO_REFERENCE",
      message: `releaseAll: the Ref to object ${released.id} at index 1 is already released`,
    },
    {
      what: "addSubmittedRefs with a string",
      call: () => counter.addSubmittedRefs([live, "x" as Loose]),
      code: "INVALID_ARGUMENT",
      message: "addSubmittedRefs: expected a Ref or an object id, got string",
    },
  ];
  await catalogue(t, cases, snapshot);

  await t.test("refused, not errors: registration on deleted or freed objects", (t) => {
    t.eq(counter.onOutOfScope(staleId, () => {}), false, "deleted: false");
    t.eq(counter.info(staleId), undefined, "info of a deleted object: undefined");
  });

  await t.test("Refs cannot be forged", (t) => {
    const RefClass = live.constructor as Loose;
    t.throws(
      () => new RefClass(Symbol("fake"), counter, undefined, live.id),
      TypeError,
      "the constructor is not public",
    );
  });

  await t.test("error messages say what was attempted and why", (t) => {
    try {
      counter.free(staleId);
    } catch (error) {
      t.ok((error as Error).message.includes(String(staleId)), "the message names the object");
      t.ok((error as Error).message.includes("deleted"), "and the reason");
    }
  });

  lease.release();
  keeper.release();
  live.release();
  foreign.release();
  t.eq(counter.liveObjects, 0, "nothing is left live");
  const ref: Ref = counter.create();
  ref.release();
});
