// The misuse catalogue (hostile and mistaken input), through the public API: forged, stale
// and reused ids, releases below zero of every kind, registrations on freed, deleted and
// non-owned objects, non-function handlers, malformed batches, sizes and LentRefs, calls
// after close, and handles from a terminated Worker. Each is a RefscopeError with its
// documented code and native status and a message naming what was attempted, and leaves
// the table exactly as it was: every object's info and holdings, the stats, and the Refs'
// and leases' own state are compared before and after. Nothing crashes.
import { Counter, type LentRef, type ObjectId, Ref, RefscopeError } from "../mod.ts";
import { suite, until } from "./_harness.ts";
import { catalogue, each, type Handle, type Loose, type Misuse, noop, observer, refusals } from "./_misuse.ts";
import { Peer } from "./_workers.ts";

/** An id's table slot and generation (`IdParts` in native/src/table.zig). */
const slotOf = (id: ObjectId) => id % 2 ** 24;
const generationOf = (id: ObjectId) => Math.floor(id / 2 ** 24);

suite("the misuse catalogue", async (t) => {
  const counter = new Counter();
  const other = new Counter();
  // A second participant on this thread: what a Worker is, without the Worker.
  const peer = Counter.attach(counter.key);

  const live = counter.create({ sizeBytes: 7 });
  live.onOutOfScope(noop);
  const spare = counter.create({ sizeBytes: 1 });
  const spare2 = counter.create({ sizeBytes: 2 });

  // A stale id whose slot is reused: same slot, the next generation.
  const stale = counter.create();
  const staleId = stale.id;
  stale.release();
  const reused = counter.create({ sizeBytes: 3 });

  let freedFired = 0;
  const freed = counter.create();
  freed.onOutOfScope(() => void freedFired++);
  counter.free(freed);
  await until(() => freedFired === 1, "the freed object's handler");

  // Out of scope, kept only by a lineage reference.
  const pinned = counter.create({ reconstructable: true });
  const pin = counter.addLineageRefs([pinned]);
  pinned.release();

  const twice = live.retain();
  twice.release();
  const submitted = counter.addSubmittedRefs([live]);
  const submittedDone = counter.addSubmittedRefs([live]);
  submittedDone.release();
  const lineageDone = counter.addLineageRefs([live]);
  lineageDone.release();

  // Borrowed by the peer; and a reference lent and not claimed (a forged lender must not
  // reach it).
  const shared = counter.create();
  const borrowed = peer.borrow(shared.retain().lend());
  const borrowedDone = borrowed.retain();
  borrowedDone.release();
  const unclaimed = shared.retain().lend();
  // Claimed already. (On another object than `unclaimed`: a LentRef is plain data, so two
  // lent by one participant on one object are interchangeable.)
  const handed = counter.create();
  const claimedLent = handed.retain().lend();
  const claimed = counter.borrow(claimedLent);
  const peerOwned = peer.create();
  peerOwned.onOutOfScope(noop);

  // Another counter's id, of a generation this counter has not reached in that slot.
  for (let index = 0; index < 9; index++) other.create().release();
  const foreign = other.create();

  const handles: Handle[] = [
    live,
    spare,
    spare2,
    stale,
    reused,
    freed,
    pinned,
    pin,
    twice,
    submitted,
    submittedDone,
    lineageDone,
    shared,
    borrowed,
    borrowedDone,
    handed,
    claimed,
    peerOwned,
    foreign,
  ];
  const observe = observer([counter, peer, other], handles);
  const lent = (id: unknown, lender: unknown = counter.participant): LentRef =>
    ({ key: counter.key, id, lender, generation: unclaimed.generation }) as LentRef;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => {
    t.eq(slotOf(reused.id), slotOf(staleId), "the stale id's slot was reused");
    t.eq(generationOf(reused.id), generationOf(staleId) + 1, "by the next generation");
    t.eq(counter.info(pinned)?.outOfScope, true, "pinned is out of scope, kept by lineage");
    t.eq(counter.info(freed)?.freed, true, "freed is freed, and still has its entry");
    t.eq(counter.info(shared)?.lentRefs, 1, "one reference of shared is lent and unclaimed");
    t.eq(counter.info(peerOwned.id)?.owner, peer.participant, "the peer owns its object");
    t.ok(generationOf(foreign.id) >= 10, "the other counter's id has generation 10 or more");
  });

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
      ["borrow", (id) => counter.borrow(lent(id)), (id) => `borrow object ${id} from participant 0`],
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
        message: `borrow object ${handed.id} from participant 0`,
      },
      {
        what: "a LentRef that was never lent",
        call: () => counter.borrow(lent(live.id, peer.participant)),
        code: "NO_REFERENCE",
        message: `borrow object ${live.id} from participant ${peer.participant}`,
      },
      {
        what: "a LentRef from a participant number not attached",
        call: () => counter.borrow(lent(shared.id, 63)),
        code: "NO_REFERENCE",
        message: "from participant 63",
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

  await t.test("registration on freed, deleted and non-owned objects", async (t) => {
    await catalogue(t, [
      {
        what: "onOutOfScope on the peer's object",
        call: () => counter.onOutOfScope(peerOwned.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${peerOwned.id}`,
      },
      {
        what: "onDeleted on the peer's object",
        call: () => counter.onDeleted(peerOwned.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${peerOwned.id}`,
      },
      {
        what: "free of the peer's object",
        call: () => counter.free(peerOwned.id),
        code: "NOT_OWNED",
        message: `free object ${peerOwned.id}`,
      },
      {
        what: "the peer's onOutOfScope on this thread's object",
        call: () => peer.onOutOfScope(live.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${live.id}`,
      },
      {
        what: "the borrower's onOutOfScope on what it borrowed",
        call: () => borrowed.onOutOfScope(noop),
        code: "NOT_OWNED",
        message: `handler on object ${shared.id}`,
      },
      {
        what: "the borrower's onDeleted on what it borrowed",
        call: () => borrowed.onDeleted(noop),
        code: "NOT_OWNED",
        message: `handler on object ${shared.id}`,
      },
      {
        what: "the borrower's free of what it borrowed",
        call: () => borrowed.free(),
        code: "NOT_OWNED",
        message: `free object ${shared.id}`,
      },
    ], observe);
    await refusals(t, [
      { what: "onOutOfScope on a freed object", call: () => counter.onOutOfScope(freed, noop), result: false },
      { what: "onOutOfScope on a freed object, through its Ref", call: () => freed.onOutOfScope(noop), result: false },
      { what: "a second free", call: () => counter.free(freed), result: undefined },
      { what: "onOutOfScope on a deleted object", call: () => counter.onOutOfScope(staleId, noop), result: false },
      { what: "onDeleted on a deleted object", call: () => counter.onDeleted(staleId, noop), result: false },
      {
        what: "offOutOfScope on the peer's object (nothing of this thread's is there)",
        call: () => counter.offOutOfScope(peerOwned.id, noop),
        result: false,
      },
      { what: "offOutOfScope of a handler never registered", call: () => live.offOutOfScope(() => {}), result: false },
    ], observe);
  });

  await t.test("handlers, hooks and tasks that are not functions: INVALID_ARGUMENT", async (t) => {
    const values: [string, unknown][] = [
      ["null", null],
      ["undefined", undefined],
      ["a string", "() => {}"],
      ["a number", 42],
      ["an object", {}],
      ["an object with a call method", { call() {} }],
      ["an array", [noop]],
      ["a symbol", Symbol("handler")],
      ["a bigint", 1n],
      ["a boolean", true],
      ["a promise", Promise.resolve()],
    ];
    const registrations: [string, (handler: Loose) => unknown][] = [
      ["onOutOfScope", (handler) => counter.onOutOfScope(live, handler)],
      ["onDeleted", (handler) => counter.onDeleted(live.id, handler)],
      ["offOutOfScope", (handler) => counter.offOutOfScope(live, handler)],
      ["offDeleted", (handler) => counter.offDeleted(live, handler)],
      ["onOutOfScope", (handler) => live.onOutOfScope(handler)],
      ["onDeleted", (handler) => live.onDeleted(handler)],
      ["offOutOfScope", (handler) => live.offOutOfScope(handler)],
      ["onOutOfScope", (handler) => peer.onOutOfScope(peerOwned, handler)],
    ];
    const handlerCases = registrations.flatMap(([name, call]) =>
      each(
        values,
        ([what]) => `${name} with ${what}`,
        ([, handler]) => call(handler),
        "INVALID_ARGUMENT",
        `${name}: the handler must be a function`,
      )
    );
    const hookValues = values.filter(([, value]) => value !== undefined);
    await catalogue(t, [
      ...handlerCases,
      ...each(
        hookValues,
        ([what]) => `counter.onHandlerError = ${what}`,
        ([, hook]) => {
          counter.onHandlerError = hook as Loose;
        },
        "INVALID_ARGUMENT",
        "onHandlerError must be a function",
      ),
      ...each(
        hookValues,
        ([what]) => `attach with onHandlerError ${what}`,
        ([, hook]) => Counter.attach(counter.key, { onHandlerError: hook as Loose }),
        "INVALID_ARGUMENT",
        "attach: onHandlerError must be a function",
      ),
      ...each(
        hookValues,
        ([what]) => `new Counter with onHandlerError ${what}`,
        ([, hook]) => new Counter({ onHandlerError: hook as Loose }),
        "INVALID_ARGUMENT",
        "new Counter: onHandlerError must be a function",
      ),
      ...each(
        [null, 42, "options"],
        (options) => `attach with options ${String(options)}`,
        (options) => Counter.attach(counter.key, options as Loose),
        "INVALID_ARGUMENT",
        "attach: options must be an object",
      ),
      ...each(
        [null, 42, "options"],
        (options) => `new Counter with options ${String(options)}`,
        (options) => new Counter(options as Loose),
        "INVALID_ARGUMENT",
        "new Counter: options must be an object",
      ),
      ...each(
        values,
        ([what]) => `runTask with ${what} as the task`,
        ([, task]) => counter.runTask([live], task as Loose),
        "INVALID_ARGUMENT",
        "runTask: the task must be a function",
      ),
    ], observe);
    t.eq(counter.onHandlerError, undefined, "the hook was left unset");
  });

  await t.test("batches: non-iterables, array-likes, wrong elements, holes, enormous lengths", async (t) => {
    const notIterable: [string, unknown][] = [
      ["null", null],
      ["undefined", undefined],
      ["a number", 42],
      ["a boolean", true],
      ["a string", "ab"],
      ["a plain object", {}],
      ["an array-like", { length: 1, 0: live }],
      ["a Ref", live],
    ];
    const holey = (...items: unknown[]): unknown[] => {
      const array = new Array(items.length + 1);
      items.forEach((item, index) => (array[index === 0 ? 0 : index + 1] = item));
      return array; // the item after the first is a hole
    };
    const enormous = (first?: unknown): unknown[] => {
      const array = new Array(2 ** 32 - 1);
      if (first !== undefined) array[0] = first;
      return array;
    };
    const elements: [string, (valid: unknown) => unknown[]][] = [
      ["a string element", (valid) => [valid, "x"]],
      ["a null element", (valid) => [valid, null]],
      ["a plain object element", (valid) => [valid, {}]],
      ["a bigint element", (valid) => [valid, 1n]],
      ["a hole", (valid) => holey(valid, valid)],
      ["an enormous sparse array", () => enormous()],
      ["an enormous sparse array after a valid element", (valid) => enormous(valid)],
    ];
    const idBatches: [string, (targets: Loose) => unknown][] = [
      ["addSubmittedRefs", (targets) => counter.addSubmittedRefs(targets)],
      ["addLineageRefs", (targets) => counter.addLineageRefs(targets)],
      ["create (contains)", (targets) => counter.create({ contains: targets })],
      ["create (lineage)", (targets) => counter.create({ lineage: targets })],
      ["runTask", (targets) => counter.runTask(targets, noop)],
    ];
    const cases: Misuse[] = [
      ...each(
        notIterable.filter(([, value]) => value !== undefined),
        ([what]) => `releaseAll of ${what}`,
        ([, refs]) => counter.releaseAll(refs as Loose),
        "INVALID_ARGUMENT",
        "releaseAll: expected an iterable of Refs",
      ),
      {
        what: "releaseAll of nothing",
        call: () => (counter.releaseAll as Loose)(),
        code: "INVALID_ARGUMENT",
        message: "releaseAll: expected an iterable of Refs, got undefined",
      },
      ...each(
        elements,
        ([what]) => `releaseAll with ${what}`,
        ([, make]) => counter.releaseAll(make(spare) as Loose),
        "INVALID_ARGUMENT",
        "releaseAll: expected a Ref at index",
      ),
      {
        what: "releaseAll with a raw id",
        call: () => counter.releaseAll([spare, live.id] as Loose),
        code: "INVALID_ARGUMENT",
        message: "expected a Ref at index 1, got number",
      },
      {
        what: "releaseAll with a forged Ref",
        call: () => counter.releaseAll([spare, Object.create(Ref.prototype)]),
        code: "INVALID_ARGUMENT",
        message: "expected a Ref at index 1",
      },
      {
        what: "releaseAll with another counter's Ref",
        call: () => counter.releaseAll([spare, foreign]),
        code: "INVALID_ID",
        message: "belongs to another counter",
      },
      {
        what: "releaseAll with the peer's Ref",
        call: () => counter.releaseAll([spare, borrowed]),
        code: "INVALID_ID",
        message: "belongs to another counter",
      },
      {
        what: "releaseAll of a generator that yields a number",
        call: () =>
          counter.releaseAll((function* () {
            yield spare;
            yield 7 as Loose;
          })()),
        code: "INVALID_ARGUMENT",
        message: "at index 1, got number",
      },
    ];
    for (const [name, call] of idBatches) {
      cases.push(
        ...each(
          notIterable.filter(([, value]) => value !== undefined),
          ([what]) => `${name} of ${what}`,
          ([, targets]) => call(targets),
          "INVALID_ARGUMENT",
          `${name}: expected an iterable of Refs or ids`,
        ),
        ...each(
          elements,
          ([what]) => `${name} with ${what}`,
          ([, make]) => call(make(live)),
          "INVALID_ARGUMENT",
          `${name}: expected a Ref or an object id`,
        ),
        {
          what: `${name} with another counter's Ref`,
          call: () => call([live, foreign]),
          code: "INVALID_ID",
          message: "belongs to another counter",
        },
      );
    }
    cases.push({
      what: "addSubmittedRefs of nothing",
      call: () => (counter.addSubmittedRefs as Loose)(),
      code: "INVALID_ARGUMENT",
      message: "got undefined",
    });
    await catalogue(t, cases, observe);
  });

  await t.test("duplicates: refused by releaseAll, one reference each in leases, counted once by create", (t) => {
    const target = counter.create();
    const before = counter.info(target)!;
    const lease = counter.addSubmittedRefs([target, target, target.id]);
    t.eq(
      counter.info(target)?.submittedRefs,
      before.submittedRefs + 3,
      "a lease takes one submitted reference per occurrence",
    );
    lease.release();
    t.eq(counter.info(target)?.submittedRefs, before.submittedRefs, "and its release removes each");
    const container = counter.create({ contains: [target, target, target.id], lineage: [target, target] });
    t.eq(counter.info(target)?.containedIn, 1, "repeats in contains count once");
    t.eq(counter.info(target)?.lineageRefs, 1, "repeats in lineage count once");
    container.release();
    t.eq(counter.info(target)?.containedIn, 0, "and the container's deletion releases each once");
    t.eq(counter.info(target)?.lineageRefs, 0, "its lineage too");
    target.release();
    t.eq(counter.info(target), undefined, "the target is gone");
  });

  await t.test("sizes and create options: INVALID_ARGUMENT beyond [0, 2^53), LIMIT beyond the byte total and the nesting depth", async (t) => {
    const outOfDomain = [
      -1,
      -0.5,
      1.5,
      NaN,
      Infinity,
      -Infinity,
      2 ** 53,
      2 ** 53 + 2,
      2 ** 60,
      2 ** 64,
      1e300,
      Number.MAX_VALUE,
    ];
    await catalogue(t, [
      ...each(
        outOfDomain,
        (size) => `sizeBytes ${size}`,
        (size) => counter.create({ sizeBytes: size }),
        "INVALID_ARGUMENT",
        (size) => `create (sizeBytes ${size}): an argument is outside its domain`,
      ),
      ...each(
        outOfDomain,
        (size) => `sizeBytes ${size} with contains`,
        (size) => counter.create({ sizeBytes: size, contains: [live] }),
        "INVALID_ARGUMENT",
        (size) => `create (sizeBytes ${size})`,
      ),
      ...each(
        ["12", 12n, true, {}, [1]],
        (size) => `sizeBytes of type ${typeof size}`,
        (size) => counter.create({ sizeBytes: size as Loose }),
        "INVALID_ARGUMENT",
        "create: sizeBytes must be a number",
      ),
      ...each(
        [null, 42, "options", true],
        (options) => `create with options ${String(options)}`,
        (options) => counter.create(options as Loose),
        "INVALID_ARGUMENT",
        "create: options must be an object",
      ),
      ...each(
        ["yes", 1, {}],
        (value) => `reconstructable ${JSON.stringify(value)}`,
        (value) => counter.create({ reconstructable: value as Loose }),
        "INVALID_ARGUMENT",
        "create: reconstructable must be a boolean",
      ),
    ], observe);

    const largest = counter.create({ sizeBytes: 2 ** 53 - 1 });
    t.eq(largest.info()?.sizeBytes, 2 ** 53 - 1, "2^53 - 1 bytes is accepted, and reported exactly");
    largest.release();

    // Each table shard keeps a u64 byte total, and an object in the thread's shard moves on
    // to the next shard when its own is full: 8 shards of 2048 objects of 2^53 - 1 bytes.
    const full = new Counter();
    const refs: Ref[] = [];
    let overflow: unknown;
    try {
      while (refs.length < 20_000) refs.push(full.create({ sizeBytes: 2 ** 53 - 1 }));
    } catch (error) {
      overflow = error;
    }
    t.eq(refs.length, 8 * 2048, "8 × 2048 objects of 2^53 - 1 bytes fit");
    t.ok(overflow instanceof RefscopeError && overflow.code === "LIMIT", "then the byte total is full: LIMIT");
    await catalogue(t, [
      {
        what: "one more object of 2^53 - 1 bytes",
        call: () => full.create({ sizeBytes: 2 ** 53 - 1 }),
        code: "LIMIT",
        message: "the byte total",
      },
      {
        what: "one more object of 2048 bytes (each shard has 2047 left)",
        call: () => full.create({ sizeBytes: 2048, contains: [refs[0]] }),
        code: "LIMIT",
        message: "the byte total",
      },
    ], observer([full], refs.slice(0, 4)));
    const last = full.create({ sizeBytes: 2047 });
    t.eq(last.info()?.sizeBytes, 2047, "an object of 2047 bytes still fits: the total is exactly a u64");
    await full.close();

    // Containment and lineage chains are limited to a depth of 1000.
    const deep = new Counter();
    let deepest = deep.create();
    let depth = 0;
    try {
      for (; depth < 5000; depth++) {
        const next = deep.create({ contains: [deepest] });
        deepest.release(); // kept by its container
        deepest = next;
      }
    } catch (error) {
      t.ok(error instanceof RefscopeError && error.code === "LIMIT", "the chain ends with LIMIT");
    }
    t.eq(depth, 1000, "a chain reaches a depth of 1000");
    await catalogue(t, [
      {
        what: "containing an object 1000 deep",
        call: () => deep.create({ contains: [deepest] }),
        code: "LIMIT",
        message: "the nesting depth",
      },
      {
        what: "a lineage on an object 1000 deep",
        call: () => deep.create({ lineage: [deepest] }),
        code: "LIMIT",
        message: "the nesting depth",
      },
    ], observer([deep], [deepest]));
    await deep.close();
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
        [-1, -2, NaN, 0.5, 1.5, 2 ** 32, 2 ** 32 + counter.participant, Infinity, -Infinity, 2 ** 32 - 1, 1e20],
        (lender) => `borrow from lender ${lender}`,
        (lender) => counter.borrow({ key: counterKey, id: shared.id, lender, generation: unclaimed.generation }),
        "INVALID_ARGUMENT",
        (lender) => `borrow: the lender ${lender} is not a participant number`,
      ),
      ...each(
        [64, 1000, 2 ** 32 - 2],
        (lender) => `borrow from participant ${lender}, beyond the last`,
        (lender) => counter.borrow({ key: counterKey, id: shared.id, lender, generation: unclaimed.generation }),
        "INVALID_ARGUMENT",
        (lender) => `borrow object ${shared.id} from participant ${lender}: an argument is outside its domain`,
      ),
    ], observe);
    const mine = counter.borrow(unclaimed);
    t.eq(mine.id, shared.id, "the genuine LentRef is still claimable, once");
    mine.release();
  });

  await t.test("a participant that closed: every call is CLOSED, and the counter stays open", async (t) => {
    const leaving = Counter.attach(counter.key);
    const ref = leaving.create();
    const borrowedThere = leaving.borrow(live.retain().lend());
    await leaving.close();
    t.eq(counter.info(live)?.borrowers, 0, "its borrow was released");
    await catalogue(t, [
      { what: "create", call: () => leaving.create(), code: "CLOSED", message: "create: the counter is closed" },
      {
        what: "release of its Ref",
        call: () => borrowedThere.release(),
        code: "CLOSED",
        message: "release: the counter is closed",
      },
      { what: "retain of its Ref", call: () => ref.retain(), code: "CLOSED", message: "retain: the counter is closed" },
      { what: "info", call: () => leaving.info(live.id), code: "CLOSED", message: "info: the counter is closed" },
      {
        what: "borrow",
        call: () => leaving.borrow(unclaimed),
        code: "CLOSED",
        message: "borrow: the counter is closed",
      },
    ], observe);
    t.eq(counter.closed, false, "the counter is still open");
  });

  await t.test("every public call after close: CLOSED", async (t) => {
    const closing = new Counter();
    const attached = Counter.attach(closing.key);
    const ref = closing.create();
    ref.onOutOfScope(noop);
    const lease = closing.addSubmittedRefs([ref]);
    const lineage = closing.addLineageRefs([ref]);
    const lentRef = ref.retain().lend();
    const attachedRef = attached.borrow(ref.retain().lend());
    const attachedOwn = attached.create();
    const closed = closing.close();
    t.eq(closing.close(), closed, "close() again returns the same promise");
    await closed;
    const statsAtClose = closing.stats();
    const all = [ref, lease, lineage, attachedRef, attachedOwn];
    const observeClosed = () =>
      JSON.stringify({ opener: closing.stats(), attached: attached.stats(), released: all.map((h) => h.released) });
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
        what: "releaseAll",
        call: () => closing.releaseAll([ref]),
        code: "CLOSED",
        message: "releaseAll: the counter is closed",
      },
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
      { what: "Ref.release", call: () => ref.release(), code: "CLOSED", message: "release: the counter is closed" },
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
        what: "SubmittedRefs.release",
        call: () => lease.release(),
        code: "CLOSED",
        message: "remove submitted refs from 1 objects: the counter is closed",
      },
      {
        what: "LineageRefs.release",
        call: () => lineage.release(),
        code: "CLOSED",
        message: "remove lineage refs from 1 objects: the counter is closed",
      },
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
        what: "the attached participant's release",
        call: () => attachedRef.release(),
        code: "CLOSED",
        message: `release object ${ref.id}: the counter is closed`,
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
      { what: "disposing a Ref after close", call: () => ref[Symbol.dispose](), result: undefined },
      { what: "disposing a lease after close", call: () => lease[Symbol.dispose](), result: undefined },
      {
        what: "disposing the attached participant's Ref",
        call: () => attachedRef[Symbol.dispose](),
        result: undefined,
      },
    ], observeClosed);
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
    await until(() => main.stats().participants === 1, "the terminated Worker's participation to end", 15_000);
    t.eq(main.info(keptId)?.owner, "gone", "the Worker's borrowed object lost its owner");
    t.eq(main.info(mine)?.borrowers, 0, "the Worker's borrow of this thread's object was released");

    const observeMain = observer([main], [kept, mine]);
    await catalogue(t, [
      {
        what: "borrow of a LentRef from the dead Worker, object deleted",
        call: () => main.borrow(lentFromDead),
        code: "STALE_ID",
        message: `borrow object ${lentFromDead.id} from participant ${participant}`,
      },
      {
        what: "borrow of a LentRef from the dead Worker, object live",
        call: () => main.borrow(backFromDead),
        code: "NO_REFERENCE",
        message: `borrow object ${mine.id} from participant ${participant}`,
      },
      {
        what: "borrow naming the dead Worker as lender",
        call: () =>
          main.borrow({ key: main.key, id: keptId, lender: participant, generation: backFromDead.generation }),
        code: "NO_REFERENCE",
        message: `from participant ${participant}`,
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

  submitted.release();
  pin.release();
  claimed.release();
  handed.release();
  borrowed.release();
  shared.release();
  spare.release();
  spare2.release();
  reused.release();
  freed.release();
  live.release();
  peerOwned.release();
  foreign.release();
  await peer.close();
  t.eq(counter.liveObjects, 0, "nothing is left live");
  await counter.close();
  await other.close();
});
