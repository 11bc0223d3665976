// Malformed batches, out-of-range sizes and bad create options are refused; limits hold exactly.
// Batches that are not iterables of Refs or ids, sizes outside [0, 2^53) and options of the
// wrong type are INVALID_ARGUMENT (a foreign Ref in a batch, INVALID_ID); the byte total and the
// nesting depth are LIMIT at exactly their bound; repeats in a batch count as documented. Each
// case goes through tests/_misuse.ts, which checks its code, status, message and an unchanged
// table.
import { Counter, Ref, RefscopeError } from "../mod.ts";
import { suite } from "./_harness.ts";
import {
  catalogue,
  checkWorld,
  closeWorld,
  each,
  type Loose,
  type Misuse,
  noop,
  observer,
  openWorld,
} from "./_misuse.ts";

suite("the misuse catalogue: batches, sizes and create options", async (t) => {
  const world = await openWorld();
  const { counter, live, spare, borrowed, foreign, observe } = world;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => checkWorld(t, world));

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
        (size) => `create (sizeBytes ${size}): an argument is NULL or outside its domain`,
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

  await closeWorld(t, world);
});
