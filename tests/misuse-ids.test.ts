// A forged, stale or foreign id, or a target that is not a Ref, never reaches an object.
// Every operation that takes an id or a target refuses them: INVALID_ID, STALE_ID or
// INVALID_ARGUMENT, or a false/undefined refusal where the API documents one. Each case goes
// through tests/_misuse.ts, which checks its code, status, message and an unchanged table.
import { Ref } from "../mod.ts";
import { suite } from "./_harness.ts";
import { catalogue, checkWorld, closeWorld, each, type Loose, noop, openWorld, refusals } from "./_misuse.ts";

suite("the misuse catalogue: ids and targets", async (t) => {
  const world = await openWorld();
  const { counter, peer, live, spare, stale, staleId, foreign, observe, lent } = world;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => checkWorld(t, world));

  await t.test("forged ids: INVALID_ID from every operation that takes an id", async (t) => {
    const forged: [string, number][] = [
      ["0", 0],
      ["-0", -0],
      ["-1", -1],
      ["1", 1],
      ["12345", 12345],
      ["0.5", 0.5],
      ["NaN", NaN],
      ["Infinity", Infinity],
      ["-Infinity", -Infinity],
      ["2^24 - 1 (generation 0)", 2 ** 24 - 1],
      ["2^53", 2 ** 53],
      ["2^64", 2 ** 64],
      ["Number.MAX_VALUE", Number.MAX_VALUE],
      ["Number.MIN_VALUE", Number.MIN_VALUE],
      ["a live id + 0.5", live.id + 0.5],
      ["a generation not issued yet", live.id + 1000 * 2 ** 24],
      ["a slot never used", 2 ** 24 + (2 ** 24 - 1)],
      ["another counter's id", foreign.id],
    ];
    const operations: [string, (id: number) => unknown, (id: number) => string][] = [
      ["info", (id) => counter.info(id), (id) => `info of object ${id}`],
      ["holdings", (id) => counter.holdings(id), (id) => `holdings of object ${id}`],
      ["free", (id) => counter.free(id), (id) => `free object ${id}`],
      ["onOutOfScope", (id) => counter.onOutOfScope(id, noop), (id) => `handler on object ${id}`],
      ["onDeleted", (id) => counter.onDeleted(id, noop), (id) => `handler on object ${id}`],
      ["offOutOfScope", (id) => counter.offOutOfScope(id, noop), (id) => `handler from object ${id}`],
      ["offDeleted", (id) => counter.offDeleted(id, noop), (id) => `handler from object ${id}`],
      ["addSubmittedRefs", (id) => counter.addSubmittedRefs([live, id]), () => "add submitted refs to 2 objects"],
      ["addLineageRefs", (id) => counter.addLineageRefs([live, id]), () => "add lineage refs to 2 objects"],
      ["runTask", (id) => counter.runTask([id], noop), () => "add submitted refs to 1 objects"],
      ["create (contains)", (id) => counter.create({ contains: [live, id] }), () => "create (sizeBytes 0)"],
      ["create (lineage)", (id) => counter.create({ lineage: [id] }), () => "create (sizeBytes 0)"],
      ["borrow", (id) => counter.borrow(lent(id)), (id) => `borrow object ${id} from sink 0`],
      ["the peer's free", (id) => peer.free(id), (id) => `free object ${id}`],
    ];
    const cases = operations.flatMap(([operation, call, message]) =>
      each(
        forged,
        ([name]) => `${operation} with a forged id (${name})`,
        ([, id]) => call(id),
        "INVALID_ID",
        ([, id]) => message(id),
      )
    );
    await catalogue(t, cases, observe);
  });

  await t.test("a stale id whose slot was reused never reaches the new object", async (t) => {
    await catalogue(t, [
      {
        what: "free of a stale id",
        call: () => counter.free(staleId),
        code: "STALE_ID",
        message: `free object ${staleId}`,
      },
      {
        what: "submitted refs on a stale id",
        call: () => counter.addSubmittedRefs([live, staleId]),
        code: "STALE_ID",
        message: "add submitted refs",
      },
      {
        what: "lineage refs on a stale id",
        call: () => counter.addLineageRefs([staleId]),
        code: "STALE_ID",
        message: "add lineage refs",
      },
      {
        what: "runTask on a stale id",
        call: () => counter.runTask([staleId], noop),
        code: "STALE_ID",
        message: "add submitted refs",
      },
      {
        what: "create containing a stale id",
        call: () => counter.create({ contains: [staleId] }),
        code: "STALE_ID",
        message: "create",
      },
      {
        what: "create with a stale id in its lineage",
        call: () => counter.create({ lineage: [live, staleId] }),
        code: "STALE_ID",
        message: "create",
      },
      {
        what: "borrow of a stale id",
        call: () => counter.borrow(lent(staleId)),
        code: "STALE_ID",
        message: `borrow object ${staleId}`,
      },
      {
        what: "the peer's free of a stale id (stale before not owned)",
        call: () => peer.free(staleId),
        code: "STALE_ID",
        message: `free object ${staleId}`,
      },
      {
        what: "retain through the stale Ref",
        call: () => stale.retain(),
        code: "NO_REFERENCE",
        message: `retain: this Ref to object ${staleId}`,
      },
      {
        what: "release of the stale Ref",
        call: () => stale.release(),
        code: "NO_REFERENCE",
        message: `release: this Ref to object ${staleId}`,
      },
      {
        what: "lend of the stale Ref",
        call: () => stale.lend(),
        code: "NO_REFERENCE",
        message: `lend: this Ref to object ${staleId}`,
      },
      {
        what: "releaseAll with the stale Ref",
        call: () => counter.releaseAll([spare, stale]),
        code: "NO_REFERENCE",
        message: "at index 1",
      },
    ], observe);
    await refusals(t, [
      { what: "info of a stale id", call: () => counter.info(staleId), result: undefined },
      { what: "info through the stale Ref", call: () => stale.info(), result: undefined },
      { what: "holdings of a stale id", call: () => counter.holdings(staleId), result: [] },
      { what: "onOutOfScope on a stale id", call: () => counter.onOutOfScope(staleId, noop), result: false },
      { what: "onOutOfScope through the stale Ref", call: () => stale.onOutOfScope(noop), result: false },
      { what: "onDeleted on a stale id", call: () => counter.onDeleted(staleId, noop), result: false },
      { what: "offOutOfScope on a stale id", call: () => counter.offOutOfScope(staleId, noop), result: false },
      { what: "offDeleted on a stale id", call: () => counter.offDeleted(staleId, noop), result: false },
      { what: "disposing the stale Ref", call: () => stale[Symbol.dispose](), result: undefined },
    ], observe);
  });

  await t.test("targets that are not a Ref or a number: INVALID_ARGUMENT; another counter's Ref: INVALID_ID", async (t) => {
    const fakes: [string, unknown][] = [
      ["a string", "1"],
      ["a bigint", 1n],
      ["null", null],
      ["undefined", undefined],
      ["a plain object", {}],
      ["a Ref-shaped object", { id: live.id, counter, released: false }],
      ["an array", [live.id]],
      ["a symbol", Symbol("id")],
      ["a boolean", true],
      ["a function", () => live.id],
      ["Object.create(Ref.prototype)", Object.create(Ref.prototype)],
      ["a Proxy of a Ref", new Proxy(live, {})],
    ];
    const operations: [string, (target: Loose) => unknown][] = [
      ["info", (target) => counter.info(target)],
      ["holdings", (target) => counter.holdings(target)],
      ["free", (target) => counter.free(target)],
      ["onOutOfScope", (target) => counter.onOutOfScope(target, noop)],
      ["offDeleted", (target) => counter.offDeleted(target, noop)],
      ["addSubmittedRefs", (target) => counter.addSubmittedRefs([live, target])],
      ["addLineageRefs", (target) => counter.addLineageRefs([target])],
      ["create (contains)", (target) => counter.create({ contains: [target] })],
      ["create (lineage)", (target) => counter.create({ lineage: [live, target] })],
    ];
    const cases = operations.flatMap(([operation, call]) => [
      ...each(
        fakes,
        ([name]) => `${operation} on ${name}`,
        ([, target]) => call(target),
        "INVALID_ARGUMENT",
        `${operation}: expected a Ref or an object id, got`,
      ),
      {
        what: `${operation} on another counter's Ref`,
        call: () => call(foreign),
        code: "INVALID_ID" as const,
        message: `the Ref to object ${foreign.id} belongs to another counter`,
      },
    ]);
    await catalogue(t, cases, observe);
  });

  await closeWorld(t, world);
});
