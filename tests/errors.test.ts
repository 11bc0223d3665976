// Bad input: every mistake is a RefscopeError with a code and the native status, never a
// crash, and leaves the table exactly as it was.
import { Counter, type ErrorCode, type Ref, RefscopeError, Status } from "../mod.ts";
import { suite } from "./_harness.ts";

// deno-lint-ignore no-explicit-any
type Loose = any;

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

  const cases: [string, () => unknown, ErrorCode][] = [
    ["create with a negative size", () => counter.create({ sizeBytes: -1 }), "INVALID_ARGUMENT"],
    ["create with a fractional size", () => counter.create({ sizeBytes: 1.5 }), "INVALID_ARGUMENT"],
    ["create with a NaN size", () => counter.create({ sizeBytes: NaN }), "INVALID_ARGUMENT"],
    ["create with a size of 2^53 (overflow)", () => counter.create({ sizeBytes: 2 ** 53 }), "INVALID_ARGUMENT"],
    ["create with a string size", () => counter.create({ sizeBytes: "12" as Loose }), "INVALID_ARGUMENT"],
    ["double release of a Ref", () => released.release(), "NO_REFERENCE"],
    ["retain through a released Ref", () => released.retain(), "NO_REFERENCE"],
    ["double release of submitted refs", () => leaseReleased.release(), "NO_REFERENCE"],
    ["free of a deleted object", () => counter.free(staleId), "STALE_ID"],
    ["submitted refs on a deleted object", () => counter.addSubmittedRefs([live, staleId]), "STALE_ID"],
    ["info of a forged id", () => counter.info(12345), "INVALID_ID"],
    ["free of an id from a future generation", () => counter.free(live.id + 1000 * 2 ** 24), "INVALID_ID"],
    ["onOutOfScope on id 0", () => counter.onOutOfScope(0, () => {}), "INVALID_ID"],
    ["onOutOfScope on a fractional id", () => counter.onOutOfScope(live.id + 0.5, () => {}), "INVALID_ID"],
    ["onOutOfScope on NaN", () => counter.onOutOfScope(NaN, () => {}), "INVALID_ID"],
    ["onOutOfScope on -1", () => counter.onOutOfScope(-1, () => {}), "INVALID_ID"],
    ["onOutOfScope on 2^53", () => counter.onOutOfScope(2 ** 53, () => {}), "INVALID_ID"],
    ["onOutOfScope with a null handler", () => counter.onOutOfScope(live, null as Loose), "INVALID_ARGUMENT"],
    ["onOutOfScope with a string handler", () => live.onOutOfScope("() => {}" as Loose), "INVALID_ARGUMENT"],
    ["onOutOfScope with an object handler", () => live.onOutOfScope({} as Loose), "INVALID_ARGUMENT"],
    ["onOutOfScope on a string target", () => counter.onOutOfScope("1" as Loose, () => {}), "INVALID_ARGUMENT"],
    ["onOutOfScope on another counter's Ref", () => counter.onOutOfScope(foreign, () => {}), "INVALID_ID"],
    ["releaseAll with a number", () => counter.releaseAll([keeper, 42 as Loose]), "INVALID_ARGUMENT"],
    ["releaseAll with another counter's Ref", () => counter.releaseAll([keeper, foreign]), "INVALID_ID"],
    ["releaseAll with a released Ref", () => counter.releaseAll([keeper, released]), "NO_REFERENCE"],
    ["addSubmittedRefs with a string", () => counter.addSubmittedRefs([live, "x" as Loose]), "INVALID_ARGUMENT"],
  ];

  for (const [what, call, code] of cases) {
    const before = snapshot();
    let caught: unknown;
    try {
      call();
    } catch (error) {
      caught = error;
    }
    const ok = caught instanceof RefscopeError && caught.code === code;
    t.ok(ok, `${what}: RefscopeError ${code}${ok ? "" : `, got ${String(caught)}`}`);
    if (caught instanceof RefscopeError && caught.code in Status) {
      t.eq(caught.status, Status[caught.code as keyof typeof Status], `${what}: carries the native status`);
    }
    t.eq(snapshot(), before, `${what}: the table is unchanged`);
  }

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
